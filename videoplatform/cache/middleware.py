"""The middleware that makes a read request's one Redis round trip (see ``prefetch``)."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest
from django.http.response import HttpResponseBase

from . import prefetch
from .core import tiers

SAFE_METHODS = prefetch.SAFE_METHODS


class PrefetchMiddleware:
    """Fetches what a GET request will read from Redis in one round trip, before anything reads."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if request.method not in SAFE_METHODS:
            return self.get_response(request)
        wanted = prefetch.wants(request)
        batch = tiers().prefetch(wanted) if wanted else None
        token = prefetch.start(batch)
        try:
            return self.get_response(request)
        finally:
            prefetch.stop(token)
