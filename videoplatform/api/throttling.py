"""API-wide request throttling, counted in the shared "default" cache (Redis).

One-minute fixed windows per user (authenticated) or per client address (anonymous), shared by
every process and pod. Login and registration have stricter throttles of their own
(accounts/throttling.py). If Redis is unreachable nothing is counted: requests pass.

A client's first request in a window, in each process, is counted in Redis at once (an INCR)
and answers the window's count so far. Its next ones are counted in the process and sent to
Redis in one pipeline every ``API_THROTTLE_SYNC_INTERVAL`` seconds (0.1), each answer adding
what the process counted since to the total Redis gave it last: a request costs no round trip,
and the limit is still shared by every process and pod, seen by each at most one interval
late (a client spread over many processes can overshoot by what it sends them in that time).
``API_THROTTLE_SYNC_INTERVAL = 0`` counts every request in Redis at once.
"""

from __future__ import annotations

import atexit
import ipaddress
import logging
import os
import threading
import time
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.core.signals import setting_changed
from django.http import HttpRequest
from rest_framework.throttling import BaseThrottle

from videoplatform.cache import prefetch

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60
# The WSGI environ key under which the response cache hands on a request it counted and found
# over the limit (videoplatform/entry/response_cache.py): the seconds to wait.
COUNTED = "videoplatform.api_rate_wait"
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


def _count(key: str, amount: int = 1) -> int | None:
    """Adds ``amount`` to ``key`` in the "default" cache and answers the count (None: Redis
    unreachable). On Redis one round trip (INCRBY and EXPIRE in a pipeline)."""
    cache = caches["default"]
    client = getattr(cache, "client", None)
    if client is not None and hasattr(client, "get_client") and hasattr(cache, "make_key"):
        return _count_many({key: amount})[key]
    try:
        count = cache.incr(key, amount)
    except ValueError:  # the window's first request
        count = amount if cache.add(key, amount, timeout=WINDOW_SECONDS + 5) else cache.incr(key, amount)
    return count  # type: ignore[no-any-return]


def _count_many(amounts: dict[str, int]) -> dict[str, int | None]:
    """``_count`` for many keys: one pipeline on a Redis client, else one call each."""
    cache = caches["default"]
    client = getattr(cache, "client", None)
    if client is not None and hasattr(client, "get_client") and hasattr(cache, "make_key"):
        try:
            pipe = client.get_client(write=True).pipeline(transaction=False)
            for key, amount in amounts.items():
                name = cache.make_key(key)
                pipe.incrby(name, amount)
                pipe.expire(name, WINDOW_SECONDS + 5)
            replies = pipe.execute()
            return {key: int(replies[2 * i]) for i, key in enumerate(amounts)}
        except Exception as exc:  # noqa: BLE001 - Redis unreachable: those counts are lost
            logger.warning("API throttle counts not sent (%s: %s)", type(exc).__name__, exc)
            return dict.fromkeys(amounts)
    return {key: _count(key, amount) for key, amount in amounts.items()}


class Counts:
    """This process's side of the shared counts: per window key, the total Redis answered last
    and what was counted here since; a thread sends the latter every ``interval`` seconds."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._known: dict[str, tuple[int, int]] = {}  # key -> (window, total in Redis)
        self._pending: dict[str, int] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def knows(self, key: str) -> bool:
        """Whether a request to ``key`` is counted here (no round trip of its own)."""
        return key in self._known

    def add(self, key: str, window: int) -> int | None:
        """Counts one request; the window's count so far, this one included (None: unknown)."""
        with self._lock:
            known = self._known.get(key)
            if known is not None:
                pending = self._pending.get(key, 0) + 1
                self._pending[key] = pending
                return known[1] + pending
        # The first in this window here: counted in Redis with the request's other keys, or now.
        count = prefetch.take_count(key)
        if count is None:
            count = _count(key)
        if count is not None:
            with self._lock:
                self._known[key] = (window, count)
            self._start()
        return count

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return
        totals = _count_many(pending)
        current = int(time.time() // WINDOW_SECONDS)
        with self._lock:
            for key, total in totals.items():
                known = self._known.get(key)
                if total is not None and known is not None:
                    self._known[key] = (known[0], total)
            for key in [key for key, (window, _) in self._known.items() if window < current]:
                del self._known[key]  # past windows

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="api-throttle-sync", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.flush()
            except Exception:  # pragma: no cover - never let the thread die
                logger.exception("API throttle sync failed")

    def stop(self) -> None:
        self._stop.set()
        self.flush()


_counts: Counts | None = None
_counts_lock = threading.Lock()


def counts() -> Counts | None:
    """This process's counts, or None when every request is counted in Redis at once."""
    global _counts
    interval = float(settings.API_THROTTLE_SYNC_INTERVAL)
    if interval <= 0:
        return None
    current = _counts
    if current is None or current.pid != os.getpid():
        with _counts_lock:
            if _counts is None or _counts.pid != os.getpid():
                _counts = Counts(interval)
            current = _counts
    return current


def reset_counts() -> None:
    """Sends what this process counted and forgets the totals it knew (settings changed)."""
    global _counts
    with _counts_lock:
        old, _counts = _counts, None
    if old is not None and old.pid == os.getpid():
        old.stop()


def _after_fork_in_child() -> None:
    global _counts, _counts_lock
    _counts, _counts_lock = None, threading.Lock()  # the parent's thread does not exist here


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(reset_counts)


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("API_THROTTLE") or setting == "CACHES":
        reset_counts()


setting_changed.connect(_on_setting_changed)


def _window_key(user_pk: str | None, request: Any) -> tuple[int | None, str, float, int]:
    """(limit, the window's key, now, window) for a user's request (``user_pk`` None: per address)."""
    if user_pk is not None:
        limit, ident = parse_rate(settings.API_THROTTLE_USER_RATE), f"u:{user_pk}"
    else:
        limit, ident = parse_rate(settings.API_THROTTLE_ANON_RATE), f"ip:{ip_bucket(client_ip(request))}"
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    return limit, f"throttle:api:{ident}:{window}", now, window


def prefetch_count(request: Any, *, user_pk: str | None) -> prefetch.Count | None:
    """The count this request will add, for the request's one round trip: only when it would
    otherwise be a round trip of its own (the first of the window here, or no batching).

    For a view that ``ApiRateThrottle`` counts, asked for a request that will reach it:
    anonymous (no credentials) or with a token whose user ``user_pk`` is (a hint)."""
    if COUNTED in request.META:
        return None  # counted already, by the response cache
    limit, key, _, _ = _window_key(user_pk, request)
    if limit is None:
        return None
    shared = counts()
    if shared is not None and shared.knows(key):
        return None
    return prefetch.Count(key, WINDOW_SECONDS + 5)


def api_rate_wait(*, user: Any, request: Any) -> float | None:
    """Counts the request; None if it is within the API-wide limit, else the seconds until the
    window ends. ``user`` None or anonymous counts per client address."""
    authenticated = user is not None and user.is_authenticated
    limit, key, now, window = _window_key(str(user.pk) if authenticated else None, request)
    if limit is None:
        return None
    shared = counts()
    if shared is not None:
        count = shared.add(key, window)
    else:
        count = prefetch.take_count(key)
        if count is None:
            count = _count(key)
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
        counted = request.META.pop(COUNTED, None)  # counted already by the response cache
        if counted is not None:
            self.retry_after = float(counted)
            return False
        self.retry_after = api_rate_wait(user=getattr(request, "user", None), request=request)
        return self.retry_after is None

    def wait(self) -> float | None:
        return self.retry_after
