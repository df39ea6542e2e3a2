"""Root URLs: the home page, probes and metrics at the top, the API under /api/, admin under /admin/."""

from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from streaming import views as streaming_views

from . import home, metrics
from .entry import health

handler404 = "videoplatform.api.errors.handler404"
handler500 = "videoplatform.api.errors.handler500"

# Django tries the patterns in order, so the hot read routes come first (videos, the stream,
# the plans): no two of these modules' patterns match the same path, so the order changes
# which pattern is tried first, never which one matches.
api_patterns: list[URLPattern | URLResolver] = [
    path("", include("videos.api.urls")),
    path("", include("streaming.api.urls")),  # --- Media: the stream endpoint
    path("", include("subscriptions.api.urls")),
    path("", include("accounts.api.urls")),
    path("", include("streaming.live.api.urls")),  # --- Live streaming
    path("", include("webhooks.api.urls")),
    path("schema", SpectacularAPIView.as_view(), name="schema"),
    path("docs", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]

urlpatterns = [
    path("api/", include(api_patterns)),  # first: nearly every request is an API request
    path("", home.home, name="home"),
    path("health", health.health, name="health"),
    path("ready", health.ready, name="ready"),
    path("health/detail", health.detailed_health, name="health-detail"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    # --- Media: the watch page and signed media (HLS playlists, segments, images).
    path("watch/<str:video_id>", streaming_views.watch, name="watch"),
    path("media/s/<str:token>/<path:path>", streaming_views.media_serve, name="media-signed"),
    # --- Live: the ingest's hooks, signed live HLS, the live watch page.
    path("", include("streaming.live.urls")),
]
