"""API-wide request throttling, counted in the shared "default" cache (Redis).

One-minute fixed windows per user (authenticated) or per client address (anonymous), shared by
every process and pod: one INCR per request. Login and registration have stricter throttles of
their own (accounts/throttling.py). If Redis is unreachable nothing is counted: requests pass.
"""

from __future__ import annotations

import ipaddress
import time
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.http import HttpRequest
from rest_framework.throttling import BaseThrottle

WINDOW_SECONDS = 60
_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}


def client_ip(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or with TRUSTED_PROXY_COUNT = n > 0, the n-th
    X-Forwarded-For entry from the right (the address the outermost trusted proxy saw).

    Entries further left are written by the client and could be anything, so they are never used.
    """
    remote = str(request.META.get("REMOTE_ADDR") or "")
    proxies = int(settings.TRUSTED_PROXY_COUNT)
    if proxies <= 0:
        return remote
    forwarded = [part.strip() for part in str(request.META.get("HTTP_X_FORWARDED_FOR", "")).split(",")]
    forwarded = [part for part in forwarded if part]
    if len(forwarded) < proxies:
        return remote  # did not come through the proxies we were told about
    candidate = forwarded[-proxies]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote


@lru_cache(maxsize=4096)
def ip_bucket(ip: str) -> str:
    """IPv6 clients are counted per /64: one host usually holds the whole /64."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


@lru_cache(maxsize=64)
def parse_rate(rate: str) -> int | None:
    """``"1200/min"`` as requests per minute; empty or ``off`` means unthrottled."""
    rate = (rate or "").strip().lower()
    if rate in ("", "off", "none"):
        return None
    count, _, unit = rate.partition("/")
    seconds = _UNITS[unit.strip() or "min"]
    return max(1, int(int(count) * WINDOW_SECONDS / seconds))


def _count(key: str) -> int | None:
    """Adds one to ``key`` in the "default" cache and answers the count (None: Redis unreachable)."""
    cache = caches["default"]
    try:
        count = cache.incr(key)
    except ValueError:  # the window's first request
        count = 1 if cache.add(key, 1, timeout=WINDOW_SECONDS + 5) else cache.incr(key)
    return count  # type: ignore[no-any-return]


def api_rate_wait(*, user: Any, request: Any) -> float | None:
    """Counts the request; None if it is within the API-wide limit, else the seconds until the
    window ends. ``user`` None or anonymous counts per client address."""
    if user is not None and user.is_authenticated:
        limit, ident = parse_rate(settings.API_THROTTLE_USER_RATE), f"u:{user.pk}"
    else:
        limit, ident = parse_rate(settings.API_THROTTLE_ANON_RATE), f"ip:{ip_bucket(client_ip(request))}"
    if limit is None:
        return None
    now = time.time()
    count = _count(f"throttle:api:{ident}:{int(now // WINDOW_SECONDS)}")
    if count is None or count <= limit:
        return None
    return WINDOW_SECONDS - (now % WINDOW_SECONDS)


def api_rate_allows(*, user: Any, request: Any) -> bool:
    return api_rate_wait(user=user, request=request) is None


class ApiRateThrottle(BaseThrottle):
    """Per user, or per client address for anonymous requests; 429 with Retry-After beyond."""

    def __init__(self) -> None:
        self.retry_after: float | None = None

    def allow_request(self, request: Any, view: Any) -> bool:
        self.retry_after = api_rate_wait(user=getattr(request, "user", None), request=request)
        return self.retry_after is None

    def wait(self) -> float | None:
        return self.retry_after
