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
        # What the request read already (the response cache's token check) is not read again.
        outer = prefetch.current()
        known = outer.known if outer is not None else {}
        wanted = [
            want
            for want in prefetch.wants(request)
            if not (isinstance(want, prefetch.Raw) and (want.alias, want.key) in known)
        ]
        batch = tiers().prefetch(wanted) if wanted else None
        if known:
            batch = batch if batch is not None else prefetch.Batch()
            batch.known.update(known)
        token = prefetch.start(batch)
        try:
            return self.get_response(request)
        finally:
            prefetch.stop(token)
