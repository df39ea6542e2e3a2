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
still holds what it read (``LocalTier.holds``: an invalidation, an eviction, new data or a lost
invalidation feed retires it; an expired entry too, until it is refilled with the same data). So
an answer goes stale exactly when the L1 data it shows does, in every process, with the tiers'
invalidation (docs/caching.md).

The key is everything the full path's answer depends on besides the audience: the path, the
query string, the Host header, whether the request came over HTTPS, ``Accept`` and
``Accept-Encoding``; and, within it, the kind of client (anonymous or bearer token: Django's
headers differ between them) and the audience's value. The query string is normalised (decoded,
its parameters in name order: the views read each by name), and a key longer than
``RESPONSE_CACHE_MAX_KEY_BYTES`` is never kept. Only 200 answers without cookies are kept, and
only when the view knows every query parameter (``share(params=...)``: an unknown one would be a
new key for Django's same answer) and the key was asked for before (one-off requests are not
admitted). A view whose answers are each viewer's own whatever the data (``sharing.never``: the
stream's signed URLs, the viewer's account) marks its key so, and the key's next requests go to
Django without being recorded. The bound counts what is stored: keys, headers and bodies; least
recently used first out. ``RESPONSE_CACHE_ENTRIES = 0`` switches it off. Whatever makes an
answer depend on more than that (a middleware reading another header, ``Origin`` for CORS say)
must join the key here, or its views must not share.

A request that carries a cookie other than a well-formed CSRF cookie (a session, a malformed
``csrftoken``: Django answers those with ``Set-Cookie``/``Vary: Cookie``) goes to Django, and so
does one whose ``Authorization`` header the API's authentication would not read as a usable
bearer token: both read it with the same parser (``accounts.authentication.bearer_token``).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from django.conf import settings

from ..api import sharing
from ..api.sharing import BY_ADULT, DEFAULT_AUTH, EVERYONE, NO_AUTH
from ..cache import hooks, prefetch
from ..metrics import LATENCY, REQUEST_DB_QUERIES, REQUEST_DB_SECONDS, REQUESTS, RESPONSE_CACHE

__all__ = ["BY_ADULT", "DEFAULT_AUTH", "EVERYONE", "NO_AUTH", "ResponseCache", "install", "read_body", "wrap"]

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
    never: bool = False  # the view's answers at this path are every viewer's own


_recording: ContextVar[Recording | None] = ContextVar("videoplatform_response_recording", default=None)


class _Observer:
    """What the cache tiers tell of a request (``videoplatform.cache.hooks``), noted in the
    recording of the request being answered, if any."""

    def read(self, tier: Any, key: Any, entry: Any) -> None:
        """This request used L1 ``entry`` (still current when served only if so)."""
        recording = _recording.get()
        if recording is not None:
            recording.reads.append((tier, key, entry))

    def tainted(self) -> None:
        """This request read something other than L1: its answer is not shared."""
        recording = _recording.get()
        if recording is not None:
            recording.tainted = True

    @contextmanager
    def loading(self) -> Iterator[None]:
        """SQL run in this block loads an entry (it shows only through ``reads``)."""
        recording = _recording.get()
        if recording is None:
            yield
            return
        from ..db.instrumentation import current_stats

        stats = current_stats()
        before = stats.queries if stats is not None else 0
        try:
            yield
        finally:
            if stats is not None:
                recording.loader_queries += stats.queries - before


def _shared(request: Any, *, audience: str, auth: str, params: Iterable[str]) -> None:
    """A view shared its answer (``videoplatform.api.sharing.share``); kept only if the request
    read nothing but L1 (see the module's docstring)."""
    recording = _recording.get()
    if recording is None:
        return
    known = set(params)
    if any(name not in known for name in request.query_params):
        return
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


def _never(request: Any) -> None:
    """A view said no answer at this path is shared (``videoplatform.api.sharing.never``)."""
    recording = _recording.get()
    if recording is not None:
        recording.never = True


def install() -> None:
    """Registers the response cache's listeners with the cache tiers and the views (at start-up)."""
    hooks.register(_Observer())
    sharing.register(_shared, never=_never)


# A key's mark among the keys asked for lately (``ResponseCache._admission``).
_FIRST, _AGAIN, _NEVER = object(), object(), object()

# What an entry costs beside the bytes it holds (objects, dictionary slots), about.
_OVERHEAD = 512


@dataclass
class Answer:
    status: str
    headers: list[tuple[str, str]]
    body: bytes
    reads: list[tuple[Any, Any, Any]]
    route: str

    @property
    def cost(self) -> int:
        headers = sum(len(name) + len(value) for name, value in self.headers)
        return len(self.body) + len(self.status) + headers + 64 * len(self.reads) + _OVERHEAD

    def current(self) -> bool:
        return all(tier.l1.holds(key, entry) and tier.feed.alive() for tier, key, entry in self.reads)

    @property
    def position(self) -> int:
        """The WAL position the answer reflects every commit up to: its L1 entries' lowest."""
        return min((getattr(entry, "position", 0) for _, _, entry in self.reads), default=0)


@dataclass
class Group:
    """The answers to one request key: per kind of client and audience value. Its ``size``
    counts the key and every answer."""

    audience: str
    auth: str
    size: int
    answers: dict[tuple[str, Any], Answer] = field(default_factory=dict)


class _Request:
    """Enough of an HttpRequest for ``client_ip`` (it reads ``META`` only)."""

    __slots__ = ("META",)

    def __init__(self, environ: dict[str, Any]) -> None:
        self.META = environ


def _key_size(key: tuple[str, ...]) -> int:
    return sum(len(part) for part in key)


def cookies_understood(raw: str) -> bool:
    """Whether Django answers a request with these cookies as one with none: only a well-formed
    CSRF cookie qualifies (a malformed one is replaced with ``Set-Cookie``; a session, even a
    junk one, makes the answer the session's)."""
    from django.http.cookie import parse_cookie
    from django.middleware.csrf import CSRF_ALLOWED_CHARS, CSRF_SECRET_LENGTH, CSRF_TOKEN_LENGTH

    allowed = set(CSRF_ALLOWED_CHARS)
    for name, value in parse_cookie(raw).items():
        if name != settings.CSRF_COOKIE_NAME or settings.CSRF_USE_SESSIONS:
            return False
        # CsrfViewMiddleware's own format check: the length of a secret or a masked token,
        # and its alphabet only.
        if len(value) not in (CSRF_TOKEN_LENGTH, CSRF_SECRET_LENGTH) or not set(value) <= allowed:
            return False
    return True


class ResponseCache:
    """The WSGI wrapper; see the module's docstring."""

    def __init__(
        self,
        app: WsgiApp,
        *,
        max_entries: int | None = None,
        max_bytes: int | None = None,
        max_key_bytes: int | None = None,
    ) -> None:
        self.app = app
        self.max_entries = int(settings.RESPONSE_CACHE_ENTRIES if max_entries is None else max_entries)
        self.max_bytes = int(settings.RESPONSE_CACHE_MAX_BYTES if max_bytes is None else max_bytes)
        self.max_key_bytes = int(
            settings.RESPONSE_CACHE_MAX_KEY_BYTES if max_key_bytes is None else max_key_bytes
        )
        self._groups: OrderedDict[tuple[str, ...], Group] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        # Keys asked for once lately (a digest each): a key is admitted on its second miss. Keys
        # whose view never shares stay marked so (``sharing.never``), least recently asked out.
        self._seen: OrderedDict[bytes, object] = OrderedDict()
        self._seen_limit = max(1024, 4 * self.max_entries)
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

    @property
    def size(self) -> int:
        """The bytes charged for what is kept."""
        return self._size

    def clear(self) -> None:
        with self._lock:
            self._groups.clear()
            self._seen.clear()
            self._size = 0

    # --- the request --------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if (
            self.max_entries <= 0
            or environ.get("REQUEST_METHOD") != "GET"
            or not str(environ.get("PATH_INFO", "")).startswith("/api/")
        ):
            return self.app(environ, start_response)
        # What this checks (the token) is not read again if the request goes on to Django.
        scope = prefetch.start(prefetch.Batch())
        try:
            return self._handle(environ, start_response)
        finally:
            prefetch.stop(scope)

    def _handle(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        cookies = environ.get("HTTP_COOKIE")
        if cookies and not cookies_understood(str(cookies)):
            return self.app(environ, start_response)  # only Django can tell what it answers
        started = time.perf_counter()
        key = self._key(environ)
        if key is None:
            return self.app(environ, start_response)  # too long to keep
        group = self._groups.get(key)
        if group is not None:
            served = self._serve(key, group, environ, start_response, started)
            if served is not None:
                return served
        self._results["miss"].inc()
        if group is None and self._admission(key) is not _AGAIN:
            return self.app(environ, start_response)
        return self._record(key, environ, start_response)

    def _key(self, environ: dict[str, Any]) -> tuple[str, ...] | None:
        """The request's key, normalised, or None when it is longer than ``max_key_bytes``."""
        raw_query = str(environ.get("QUERY_STRING", ""))
        if len(raw_query) > self.max_key_bytes:
            return None
        pairs = parse_qsl(raw_query, keep_blank_values=True, encoding="latin-1")
        query = urlencode(sorted(pairs, key=lambda pair: pair[0]))  # stable: values keep their order
        key = (
            str(environ.get("PATH_INFO", "")),
            query,
            str(environ.get("HTTP_HOST", "")),
            str(environ.get("HTTP_X_FORWARDED_HOST", "")),
            str(environ.get("wsgi.url_scheme", "")),
            str(environ.get(self._scheme_header, "")) if self._scheme_header else "",
            str(environ.get("HTTP_ACCEPT", "")),
            str(environ.get("HTTP_ACCEPT_ENCODING", "")),
        )
        return key if _key_size(key) <= self.max_key_bytes else None

    @staticmethod
    def _digest(key: tuple[str, ...]) -> bytes:
        return hashlib.blake2b("\x00".join(key).encode("utf-8", "surrogatepass"), digest_size=16).digest()

    def _admission(self, key: tuple[str, ...]) -> object:
        """``_AGAIN`` when ``key`` was asked for lately (its answer is recorded, and kept if it
        qualifies); ``_FIRST`` when not, remembering it (one-offs are not kept); ``_NEVER`` when
        its view said no answer at its path is shared (never recorded again while remembered)."""
        digest = self._digest(key)
        with self._lock:
            mark = self._seen.get(digest)
            if mark is _NEVER:
                self._seen.move_to_end(digest)
                return _NEVER
            if mark is not None:
                del self._seen[digest]
                return _AGAIN
            self._remember(digest, _FIRST)
        return _FIRST

    def _never_again(self, key: tuple[str, ...]) -> None:
        digest = self._digest(key)
        with self._lock:
            self._remember(digest, _NEVER)

    def _remember(self, digest: bytes, mark: object) -> None:
        """Marks ``digest`` (under ``_lock``); the least recently asked marks go past the bound."""
        self._seen[digest] = mark
        while len(self._seen) > self._seen_limit:
            self._seen.popitem(last=False)

    def _viewer(self, group: Group, environ: dict[str, Any]) -> tuple[str, Any, int] | None:
        """(kind of client, user or None, the WAL position its answer must reflect: its token's
        pin) as the view's authentication would see it, or None when only Django can tell (a
        session, a malformed or refused token)."""
        if group.auth == NO_AUTH:
            return "anonymous", None, 0
        header = environ.get("HTTP_AUTHORIZATION")
        if not header:
            return "anonymous", None, 0  # cookies: only a well-formed CSRF one gets here
        from rest_framework.exceptions import AuthenticationFailed

        from accounts.authentication import bearer_token
        from accounts.selectors import token_viewer_get

        try:
            token = bearer_token(header)
        except AuthenticationFailed:
            return None  # Django refuses it
        if token is None:
            return None  # another scheme: the next authentication class decides
        from ..db.routing import routing_context

        try:
            # The token check reads the token's pin with its entry (one round trip): a client
            # that wrote through another process a moment ago is not answered from here.
            with routing_context() as context:
                user = token_viewer_get(token=token)
                position = context.local_lsn()
        except Exception:  # noqa: BLE001 - refused, or the database is down: Django answers
            return None
        return "token", user, position

    def _serve(
        self,
        key: tuple[str, ...],
        group: Group,
        environ: dict[str, Any],
        start_response: StartResponse,
        started: float,
    ) -> Iterable[bytes] | None:
        from ..db.instrumentation import start_stats, stop_stats

        stats, stats_token = start_stats()  # the token check may read the database
        try:
            viewer = self._viewer(group, environ)
        finally:
            stop_stats(stats_token)
        if viewer is None:
            return None
        client, user, position = viewer
        variant = (client, _audience_value(group.audience, user))
        answer = group.answers.get(variant)
        if answer is None or answer.position < position:
            return None
        if not answer.current():
            self._drop(key, group, variant, answer)
            return None
        from ..api.throttling import COUNTED, api_rate_wait

        wait = api_rate_wait(user=user, request=_Request(environ))
        if wait is not None:
            environ[COUNTED] = wait  # Django answers 429 without counting it again
            return None
        with self._lock:
            if self._groups.get(key) is group:
                self._groups.move_to_end(key)  # least recently used first out
        start_response(answer.status, list(answer.headers))
        self._count(answer, started, stats.queries, stats.seconds)
        return [answer.body]

    def _drop(self, key: tuple[str, ...], group: Group, variant: tuple[str, Any], answer: Answer) -> None:
        """Forgets a stale answer, unless it went meanwhile (evicted, replaced)."""
        with self._lock:
            if self._groups.get(key) is not group or group.answers.get(variant) is not answer:
                return
            del group.answers[variant]
            group.size -= answer.cost
            self._size -= answer.cost

    def _count(self, answer: Answer, started: float, queries: int, seconds: float) -> None:
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
        children[2].observe(queries)
        children[3].observe(seconds)
        self._results["hit"].inc()

    # --- a miss: Django answers, and the answer is kept if it qualifies -----------------------
    def _record(
        self, key: tuple[str, ...], environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        from ..db.instrumentation import start_stats, stop_stats

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
        if recording.never:
            self._never_again(key)
            return result
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
        key_cost = _key_size(key) + _OVERHEAD
        if cost + key_cost > self.max_bytes // 16:
            return
        with self._lock:
            group = self._groups.get(key)
            if group is None or (group.audience, group.auth) != (recording.audience, recording.auth):
                if group is not None:
                    self._size -= group.size
                group = self._groups[key] = Group(str(recording.audience), recording.auth, key_cost)
                self._size += key_cost
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
