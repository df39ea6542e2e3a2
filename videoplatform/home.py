"""The home page: the newest public videos (posters linking to their watch pages) and the
platform's own links (API docs, admin, health, metrics). Plain HTML, nothing from a CDN."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from streaming.selectors import poster_urls
from videoplatform.api.pagination import PageParams
from videos.selectors import video_list_public

HOME_VIDEOS = 12

LINKS = (
    ("API docs", "/api/docs", "interactive reference (Swagger UI)"),
    ("OpenAPI schema", "/api/schema", "the machine-readable API description"),
    ("Feed (JSON)", "/api/videos", "the public feed the API serves"),
    ("Admin", "/admin/", "staff only"),
    ("Health", "/health", "liveness; /ready checks the database and caches"),
    ("Health detail", "/health/detail", "every dependency and the media tools (staff only)"),
    ("Metrics", "/metrics", "Prometheus text format"),
)


@require_http_methods(["GET", "HEAD"])
def home(request: HttpRequest) -> HttpResponse:
    videos, total = video_list_public(viewer=request.user, params=PageParams(page=1, limit=HOME_VIDEOS))
    posters = poster_urls(videos=videos)
    response = render(
        request,
        "videoplatform/home.html",
        {
            "videos": [{"video": video, "poster": posters.get(video.pk)} for video in videos],
            "total": total,
            "links": LINKS,
        },
    )
    # The poster links are signed and expire: never kept by a shared cache.
    response["Cache-Control"] = "private, no-cache"
    return response
