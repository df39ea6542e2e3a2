"""The data layer's middleware: a routing context per request, pins, per-request SQL figures."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest
from django.http.response import HttpResponseBase

from videoplatform.metrics import REQUEST_DB_QUERIES, REQUEST_DB_SECONDS, labelled

from .instrumentation import start_stats, stop_stats
from .lsn import in_primary_transaction
from .routing import (
    RoutingContext,
    enter_context,
    exit_context,
    pin_keys,
    replicas_configured,
    session_pin_key,
)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class DataLayerMiddleware:
    """Routes each request's reads and pins its client after an unsafe request.

    In an unsafe request (POST, PUT, PATCH, DELETE) every read goes to the primary. When a
    request that wrote to the primary is answered (its transactions committed), its client
    (bearer token, session, user) is pinned to the primary's WAL position for
    ``DB_READ_YOUR_WRITES_WINDOW`` seconds, in the shared cache, so that its next requests, on
    any pod, read a replica that has replayed its writes, or the primary. It also records the
    request's SQL count and time by view.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        unsafe = request.method not in SAFE_METHODS
        context = RoutingContext(request=request, primary_reason="unsafe_request" if unsafe else None)
        context_token = enter_context(context)
        stats, stats_token = start_stats()
        try:
            response = self.get_response(request)
            if context.wrote and replicas_configured():
                keys = context.keys()
                cookie = response.cookies.get(settings.SESSION_COOKIE_NAME)
                if cookie is not None and cookie.value:  # a login or a new session
                    keys.add(session_pin_key(cookie.value))
                pin_keys(keys, None if in_primary_transaction() else context.commit_lsn())
        finally:
            stop_stats(stats_token)
            exit_context(context_token)
        match = getattr(request, "resolver_match", None)
        view = (match.route or match.view_name) if match else "unmatched"
        method = request.method if request.method in _METHODS else "other"
        labelled(REQUEST_DB_QUERIES, method, view).observe(stats.queries)
        labelled(REQUEST_DB_SECONDS, method, view).observe(stats.seconds)
        return response
