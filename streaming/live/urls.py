"""Live outside the API: the ingest's hooks, the signed live HLS and the live watch page."""

from django.urls import path

from . import views

urlpatterns = [
    path("internal/live/hooks/publish", views.hook_publish, name="live-hook-publish"),
    path("internal/live/hooks/publish-done", views.hook_publish_done, name="live-hook-publish-done"),
    path("internal/live/hooks/update", views.hook_update, name="live-hook-update"),
    path(
        "internal/live/hooks/sessions/<str:session_id>/config",
        views.hook_session_config,
        name="live-hook-config",
    ),
    path(
        "internal/live/hooks/sessions/<str:session_id>/ready",
        views.hook_session_ready,
        name="live-hook-ready",
    ),
    path(
        "internal/live/hooks/sessions/<str:session_id>/recordings",
        views.hook_session_recording,
        name="live-hook-recording",
    ),
    path("live/s/<str:token>/<path:path>", views.live_media, name="live-media-signed"),
    path("watch/live/<str:live_id>", views.watch_live, name="watch-live"),
]
