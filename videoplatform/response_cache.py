"""Shared answers to hot API reads, served in front of Django while what they show is unchanged.

Most requests of a video site read the same few things: a popular video, the first pages of
the feed, the plans. Once their data sits in this process's L1 (``videoplatform.cache``), what
is left of such a request is Django's and DRF's machinery, several times the work of producing
the bytes. ``ResponseCache`` wraps the WSGI application: it keeps the complete answer (status,
headers, body: compressed as the client asked) of a GET that qualified, and serves the next
identical request from it, after doing what the full path would do for it:

- **authentication**: the bearer token is checked as ``BearerTokenAuthentication`` does (a
  revoked or expired token goes to Django, which refuses it); a session cookie goes to Django;
- **who sees what**: a view *shares* an answer only when it knows the body is the same for every
  viewer of an *audience* (``EVERYONE``, or ``BY_ADULT``: the same for every viewer with the same
  adult-content preference), so a private or adult video is never shared;
- **throttling**: the API-wide throttle counts the request (over the limit goes to Django, which
  answers 429);
- **metrics**: the request is counted under its view's route, as ``MetricsMiddleware`` would.

An answer is kept only if everything it shows came through the cache tiers and is now in L1
(read there, or loaded and stored there by this very request, fenced as every L1 store is),
with no SQL beside the tiers' own loads; it is served only while every one of those L1 entries
is still the very entry it read (an invalidation, an expiry or a lost invalidation feed replaces
or drops it). So an answer goes stale exactly when the L1 data it shows does, in every process,
with the tiers' invalidation (docs/caching.md).

The key is everything the full path's answer depends on besides the audience: the path, the
query string, the Host header, whether the request came over HTTPS, ``Accept`` and
``Accept-Encoding``; and, within it, the kind of client (anonymous or bearer token: Django's
headers differ between them) and the audience's value. Only 200 answers without cookies are
kept; bounded in entries and bytes, least recently used first out. ``RESPONSE_CACHE_ENTRIES = 0``
switches it off. Whatever makes an answer depend on more than that (a middleware reading another
header, ``Origin`` for CORS say) must join the key here, or its views must not share.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Final

from django.conf import settings

from .metrics import LATENCY, REQUEST_DB_QUERIES, REQUEST_DB_SECONDS, REQUESTS, RESPONSE_CACHE

# Audiences: who is known to get the same body as the viewer the answer was built for.
EVERYONE: Final = "everyone"
BY_ADULT: Final = "by_adult"  # the same for every viewer with the same adult-content preference
_AUDIENCES: Final = (EVERYONE, BY_ADULT)

# How the view authenticates: DRF's default classes (bearer token, then session), or none at all.
DEFAULT_AUTH: Final = "default"
NO_AUTH: Final = "none"

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


@dataclass
class Recording:
    """What one candidate request read and whether its view shared its answer."""

    reads: list[tuple[Any, Any, Any]] = field(default_factory=list)  # (tier, key, entry)
    loader_queries: int = 0  # SQL run by the tiers' loaders (their results are in ``reads``)
    tainted: bool = False
    audience: str | None = None
    auth: str = DEFAULT_AUTH
    variant: tuple[str, Any] | None = None  # (kind of client, the audience's value)
    route: str = ""


_recording: ContextVar[Recording | None] = ContextVar("videoplatform_response_recording", default=None)


def note_read(tier: Any, key: Any, entry: Any) -> None:
    """The cache tiers: this request used L1 ``entry`` (still current when served only if so)."""
    recording = _recording.get()
    if recording is not None:
        recording.reads.append((tier, key, entry))


def taint() -> None:
    """The cache tiers: this request read something other than L1: its answer is not shared."""
    recording = _recording.get()
    if recording is not None:
        recording.tainted = True


@contextmanager
def loading() -> Iterator[None]:
    """The cache tiers: SQL run in this block loads an entry (it shows only through ``reads``)."""
    recording = _recording.get()
    if recording is None:
        yield
        return
    from .db.instrumentation import current_stats

    stats = current_stats()
    before = stats.queries if stats is not None else 0
    try:
        yield
    finally:
        if stats is not None:
            recording.loader_queries += stats.queries - before


def share(request: Any, *, audience: str = EVERYONE, auth: str = DEFAULT_AUTH) -> None:
    """A view: this request's answer is the same for everyone in ``audience`` (with the same
    path, query and negotiated representation). Only for views that authenticate with DRF's
    default classes (or none: ``auth=NO_AUTH``) and throttle with the API-wide throttle alone;
    the answer is kept only if the request read nothing but L1 (see the module's docstring)."""
    recording = _recording.get()
    if recording is None:
        return
    if audience not in _AUDIENCES:
        raise ValueError(f"Unknown audience {audience!r}")
    user = None
    if auth == NO_AUTH or not request.user.is_authenticated:
        client = "anonymous"
    else:
        from accounts.authentication import BearerTokenAuthentication

        if not isinstance(request.successful_authenticator, BearerTokenAuthentication):
            return  # a session: only Django can tell who it is
        client, user = "token", request.user
    match = getattr(request, "resolver_match", None)
    recording.audience = audience
    recording.auth = auth
    recording.variant = (client, _audience_value(audience, user))
    recording.route = (match.route or match.view_name) if match else "unmatched"


@dataclass
class Answer:
    status: str
    headers: list[tuple[str, str]]
    body: bytes
    reads: list[tuple[Any, Any, Any]]
    route: str

    @property
    def cost(self) -> int:
        return len(self.body) + 512  # the body and about what the rest takes

    def current(self) -> bool:
        return all(tier.l1.holds(key, entry) and tier.feed.alive() for tier, key, entry in self.reads)


@dataclass
class Group:
    """The answers to one request key: per kind of client and audience value."""

    audience: str
    auth: str
    answers: dict[tuple[str, Any], Answer] = field(default_factory=dict)
    size: int = 0


class _Request:
    """Enough of an HttpRequest for ``client_ip`` (it reads ``META`` only)."""

    __slots__ = ("META",)

    def __init__(self, environ: dict[str, Any]) -> None:
        self.META = environ


class ResponseCache:
    """The WSGI wrapper; see the module's docstring."""

    def __init__(self, app: WsgiApp, *, max_entries: int | None = None, max_bytes: int | None = None) -> None:
        self.app = app
        self.max_entries = int(settings.RESPONSE_CACHE_ENTRIES if max_entries is None else max_entries)
        self.max_bytes = int(settings.RESPONSE_CACHE_MAX_BYTES if max_bytes is None else max_bytes)
        self._groups: OrderedDict[tuple[str, ...], Group] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self._children: dict[tuple[str, str], tuple[Any, Any, Any, Any]] = {}
        self._results = {name: RESPONSE_CACHE.labels(name) for name in ("hit", "miss", "stored")}
        # The header that tells Django the request came over HTTPS (raw, in the key: identical
        # values make identical decisions, the redirect to HTTPS included).
        proxy_header = settings.SECURE_PROXY_SSL_HEADER
        self._scheme_header = str(proxy_header[0]) if proxy_header else ""
        if settings.DISALLOWED_USER_AGENTS:
            self.max_entries = 0  # answers would depend on the User-Agent: not part of the key

    def __len__(self) -> int:
        return len(self._groups)

    def clear(self) -> None:
        with self._lock:
            self._groups.clear()
            self._size = 0

    # --- the request --------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if (
            self.max_entries <= 0
            or environ.get("REQUEST_METHOD") != "GET"
            or not str(environ.get("PATH_INFO", "")).startswith("/api/")
        ):
            return self.app(environ, start_response)
        started = time.perf_counter()
        key = self._key(environ)
        group = self._groups.get(key)
        if group is not None:
            served = self._serve(group, environ, start_response, started)
            if served is not None:
                return served
        self._results["miss"].inc()
        return self._record(key, environ, start_response)

    def _key(self, environ: dict[str, Any]) -> tuple[str, ...]:
        return (
            str(environ.get("PATH_INFO", "")),
            str(environ.get("QUERY_STRING", "")),
            str(environ.get("HTTP_HOST", "")),
            str(environ.get("HTTP_X_FORWARDED_HOST", "")),
            str(environ.get("wsgi.url_scheme", "")),
            str(environ.get(self._scheme_header, "")) if self._scheme_header else "",
            str(environ.get("HTTP_ACCEPT", "")),
            str(environ.get("HTTP_ACCEPT_ENCODING", "")),
        )

    def _viewer(self, group: Group, environ: dict[str, Any]) -> tuple[str, Any] | None:
        """(kind of client, user or None) as the view's authentication would see it, or None
        when only Django can tell (a session, a malformed or refused token)."""
        if group.auth == NO_AUTH:
            return "anonymous", None
        header = environ.get("HTTP_AUTHORIZATION")
        if not header:
            cookies = environ.get("HTTP_COOKIE")
            if cookies and settings.SESSION_COOKIE_NAME in cookies:
                return None
            return "anonymous", None
        parts = header.split()
        if len(parts) != 2 or parts[0].lower() != "bearer":
            return None
        from accounts.selectors import token_viewer_get

        try:
            user = token_viewer_get(token=parts[1])
        except Exception:  # noqa: BLE001 - refused, or the database is down: Django answers
            return None
        return "token", user

    def _serve(
        self, group: Group, environ: dict[str, Any], start_response: StartResponse, started: float
    ) -> Iterable[bytes] | None:
        viewer = self._viewer(group, environ)
        if viewer is None:
            return None
        client, user = viewer
        audience_value = _audience_value(group.audience, user)
        answer = group.answers.get((client, audience_value))
        if answer is None:
            return None
        if not answer.current():
            with self._lock:
                if group.answers.get((client, audience_value)) is answer:
                    del group.answers[(client, audience_value)]
                    group.size -= answer.cost
                    self._size -= answer.cost
            return None
        from .api.throttling import api_rate_allows

        if not api_rate_allows(user=user, request=_Request(environ)):
            return None  # Django counts it once more and answers 429
        start_response(answer.status, list(answer.headers))
        self._count(answer, started)
        return [answer.body]

    def _count(self, answer: Answer, started: float) -> None:
        children = self._children.get(("GET", answer.route))
        if children is None:
            children = (
                REQUESTS.labels("GET", answer.route, answer.status[:3], "api"),
                LATENCY.labels("GET", answer.route, "api"),
                REQUEST_DB_QUERIES.labels("GET", answer.route),
                REQUEST_DB_SECONDS.labels("GET", answer.route),
            )
            self._children[("GET", answer.route)] = children
        children[0].inc()
        children[1].observe(time.perf_counter() - started)
        children[2].observe(0)
        children[3].observe(0)
        self._results["hit"].inc()

    # --- a miss: Django answers, and the answer is kept if it qualifies -----------------------
    def _record(
        self, key: tuple[str, ...], environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        from .db.instrumentation import start_stats, stop_stats

        recording = Recording()
        token = _recording.set(recording)
        stats, stats_token = start_stats()
        captured: list[Any] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured[:] = [status, headers]
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        try:
            result = self.app(environ, capture)
        finally:
            stop_stats(stats_token)
            _recording.reset(token)
        if (
            recording.variant is None
            or recording.tainted
            or not recording.reads
            or stats.queries > recording.loader_queries  # SQL beside the tiers' loads
            or not captured
            or not str(captured[0]).startswith("200")
            or any(name.lower() == "set-cookie" for name, _ in captured[1])
        ):
            return result
        body = read_body(result)
        answer = Answer(captured[0], list(captured[1]), body, recording.reads, recording.route)
        self._store(key, recording, recording.variant, answer)
        return [body]

    def _store(
        self, key: tuple[str, ...], recording: Recording, variant: tuple[str, Any], answer: Answer
    ) -> None:
        cost = answer.cost
        if cost > self.max_bytes // 16:
            return
        with self._lock:
            group = self._groups.get(key)
            if group is None or (group.audience, group.auth) != (recording.audience, recording.auth):
                if group is not None:
                    self._size -= group.size
                group = self._groups[key] = Group(str(recording.audience), recording.auth)
            previous = group.answers.get(variant)
            if previous is not None:
                group.size -= previous.cost
                self._size -= previous.cost
            group.answers[variant] = answer
            group.size += cost
            self._size += cost
            self._groups.move_to_end(key)
            while len(self._groups) > self.max_entries or self._size > self.max_bytes:
                _, dropped = self._groups.popitem(last=False)
                self._size -= dropped.size
        self._results["stored"].inc()


def read_body(result: Iterable[bytes]) -> bytes:
    """A WSGI application's body, read whole; the iterable is closed as the server would."""
    try:
        return b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()


def _audience_value(audience: str, user: Any) -> Any:
    if audience == BY_ADULT:
        return bool(user is not None and user.is_authenticated and user.show_adult_content)
    return None


def wrap(app: WsgiApp) -> WsgiApp:
    """``app`` behind a ResponseCache, or ``app`` itself when ``RESPONSE_CACHE_ENTRIES`` is 0."""
    if int(settings.RESPONSE_CACHE_ENTRIES) <= 0:
        return app
    return ResponseCache(app)
