"""Where a read goes: the primary or a healthy replica.

Every request and every Celery task runs in a *routing context* (a contextvar, so threads and
async tasks each see their own). A read goes to the primary when it runs inside a transaction,
inside ``use_primary()``, in an unsafe request, or after a write in the same context.

Otherwise it goes to a replica in rotation (see ``replicas``), the same one for the whole
context, provided that replica has replayed the *position the context needs*: the highest WAL
position its client is *pinned* to (the commit position of the client's last writes, kept in the
"default" cache, Redis, so every pod sees it), and for a task the position stamped when it was
enqueued. With no such replica the read goes to the primary (``replica_behind``); when the pins
cannot be read (Redis down) too (``pins_unavailable``).
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, TypeVar, cast, overload

from django.conf import settings
from django.core.cache import caches
from django.db import connections, transaction
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject, empty

from .aliases import PRIMARY, replica_aliases
from .lsn import UNKNOWN, commit_position, from_hex, in_primary_transaction, to_hex

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

PIN_PREFIX = "ryw:"
PIN_CACHE = "default"
# After a failure to read or write pins, this process does not try again for this long (reads
# that needed the pins go to the primary meanwhile).
PIN_RETRY_AFTER = 1.0


def _digest(value: str) -> str:
    # Domain-separated, so that a pin key is not the token digest the accounts app looks up.
    return hashlib.sha256(b"videoplatform-pin:" + value.encode()).hexdigest()[:32]


def resolved_user(request: HttpRequest) -> Any:
    """The request's user if authentication already ran, without triggering it (no query)."""
    user = request.__dict__.get("user")
    if isinstance(user, SimpleLazyObject):
        wrapped = user._wrapped  # type: ignore[attr-defined]
        return None if wrapped is empty else wrapped
    return user


def token_pin_key(token: str) -> str:
    return "t:" + _digest(token)


def session_pin_key(session_key: str) -> str:
    return "s:" + _digest(session_key)


def user_key(user_id: str) -> str:
    return f"u:{user_id}"


def request_client_keys(request: HttpRequest) -> set[str]:
    """Who the client is, as pin keys: its bearer token, its session, its user once known.

    Tokens and session keys are stored hashed: a pin key must not be a credential.
    """
    keys: set[str] = set()
    scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        keys.add(token_pin_key(token.strip()))
    session = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
    if session:
        keys.add(session_pin_key(session))
    user = resolved_user(request)
    if user is not None and getattr(user, "is_authenticated", False) and user.pk is not None:
        keys.add(user_key(str(user.pk)))
    return keys


@dataclass
class RoutingContext:
    """The routing state of one request or task."""

    request: HttpRequest | None = None
    client_keys: set[str] = field(default_factory=set)
    # Set when every read of this context goes to the primary (and why).
    primary_reason: str | None = None
    # A write ran on the primary in this context: later reads must see it.
    wrote: bool = False
    replica: str | None = None
    # A position every read of this context needs (a task's enqueue position).
    min_lsn: int = 0
    _pin_checked: frozenset[str] = frozenset()
    _pin_lsn: int = 0
    # The primary's position after this context's last write (None: not read since).
    _commit_lsn: int | None = None

    def keys(self) -> set[str]:
        if self.request is None:
            return set(self.client_keys)
        return self.client_keys | request_client_keys(self.request)

    def required_lsn(self) -> int:
        """The WAL position a replica must have replayed to serve this context's reads: the
        maximum of its clients' pins and ``min_lsn`` (``UNKNOWN`` when pins cannot be read).
        At most one cache read per new key."""
        keys = frozenset(self.keys())
        unchecked = keys - self._pin_checked
        if unchecked:
            self._pin_checked = keys
            self._pin_lsn = max(self._pin_lsn, pinned_position(unchecked))
        return max(self._pin_lsn, self.min_lsn)

    def commit_lsn(self) -> int:
        """The primary's position covering this context's writes (read once per write burst)."""
        if self._commit_lsn is None or self._commit_lsn >= UNKNOWN:
            self._commit_lsn = commit_position()
        return self._commit_lsn

    def note_write(self) -> None:
        self.wrote = True
        self._commit_lsn = None


_context: ContextVar[RoutingContext | None] = ContextVar("videoplatform_db_routing", default=None)
_use_primary: ContextVar[int] = ContextVar("videoplatform_db_use_primary", default=0)


def current_context() -> RoutingContext | None:
    return _context.get()


def enter_context(context: RoutingContext) -> Token[RoutingContext | None]:
    return _context.set(context)


def exit_context(token: Token[RoutingContext | None]) -> None:
    _context.reset(token)


@contextmanager
def routing_context(
    *, client_keys: Iterable[str] = (), primary_reason: str | None = None, min_lsn: int = 0
) -> Iterator[RoutingContext]:
    """Runs a block in its own routing context (what the middleware and task hooks do)."""
    context = RoutingContext(client_keys=set(client_keys), primary_reason=primary_reason, min_lsn=min_lsn)
    token = _context.set(context)
    try:
        yield context
    finally:
        _context.reset(token)


# --- read-your-writes pins ---------------------------------------------------------


def replicas_configured() -> bool:
    return bool(settings.REPLICA_DATABASES)


# KEYS: pins. ARGV: position (16 hex digits), ttl in seconds. Fixed-width hex compares like the
# number it spells, so the larger position wins whatever order writers arrive in.
_MERGE_PINS = """
for i = 1, #KEYS do
    local current = redis.call('GET', KEYS[i])
    if current and current >= ARGV[1] and string.len(current) == string.len(ARGV[1]) then
        redis.call('EXPIRE', KEYS[i], ARGV[2])
    else
        redis.call('SET', KEYS[i], ARGV[1], 'EX', ARGV[2])
    end
end
return #KEYS
"""

_pins_down_until = 0.0


def _pins_failed(action: str, exc: BaseException) -> None:
    global _pins_down_until
    _pins_down_until = time.monotonic() + PIN_RETRY_AFTER
    logger.warning("read-your-writes pins could not be %s (%s: %s)", action, type(exc).__name__, exc)


def _redis_client(cache: Any) -> Any:
    """The raw redis-py client of a django-redis cache, or None for another backend."""
    client = getattr(cache, "client", None)
    return client.get_client(write=True) if client is not None and hasattr(client, "get_client") else None


def pin_keys(keys: Iterable[str], lsn: int | None = None, *, window: int | None = None) -> None:
    """Pins these clients to a WAL position for the read-your-writes window: their reads go to
    a replica that has replayed it, else to the primary. Pins only grow (max-merge).

    ``lsn`` defaults to the primary's position now; inside a transaction the pin is made when
    it commits (a position read before COMMIT does not cover the commit).
    """
    wanted = list(keys)
    names = [PIN_PREFIX + key for key in wanted]
    if not names:
        return
    if lsn is None and in_primary_transaction():
        transaction.on_commit(lambda: pin_keys(wanted, window=window), robust=True)
        return
    position = commit_position() if lsn is None else lsn
    timeout = int(window if window is not None else settings.DB_READ_YOUR_WRITES_WINDOW)
    cache = caches[PIN_CACHE]
    try:
        client = _redis_client(cache)
        if client is None:  # an in-process cache: one process, no race to merge
            current = cache.get_many(names)
            cache.set_many(
                {name: to_hex(max(position, from_hex(current.get(name)) or 0)) for name in names},
                timeout=timeout,
            )
            return
        full = [cache.make_key(name) for name in names]
        from redis.cluster import RedisCluster

        groups = [[key] for key in full] if isinstance(client, RedisCluster) else [full]
        for group in groups:  # a cluster refuses one script over keys of several slots
            client.eval(_MERGE_PINS, len(group), *group, to_hex(position), max(1, timeout))
    except Exception as exc:  # noqa: BLE001 - Redis down: readers cannot see pins anyway
        _pins_failed("written", exc)


def pinned_position(keys: Iterable[str]) -> int:
    """The highest position these clients are pinned to (0: none); ``UNKNOWN`` when the pins
    cannot be read (a client that wrote must not be sent to a replica that lacks its write)."""
    names = [PIN_PREFIX + key for key in keys]
    if not names:
        return 0
    if time.monotonic() < _pins_down_until:
        return UNKNOWN
    # Pins read with the request's other keys in its one round trip (``videoplatform.cache.prefetch``;
    # imported here: the cache package imports this module).
    from videoplatform.cache import prefetch

    prefetched: list[Any] = []
    unread: list[str] = []
    for name in names:
        found, value = prefetch.take_raw(PIN_CACHE, name, decode=False)
        if found:
            prefetched.append(value)
        else:
            unread.append(name)
    if not unread:
        return max((from_hex(value) or 0 for value in prefetched), default=0)
    names = unread
    cache = caches[PIN_CACHE]
    try:
        client = _redis_client(cache)
        if client is None:
            values = list(cache.get_many(names).values())
        else:
            from redis.cluster import RedisCluster

            full = [cache.make_key(name) for name in names]
            if isinstance(client, RedisCluster):
                values = [client.get(key) for key in full]
            else:
                values = client.mget(full)
    except Exception as exc:  # noqa: BLE001 - see the docstring
        _pins_failed("read", exc)
        return UNKNOWN
    return max((from_hex(value) or 0 for value in [*prefetched, *values]), default=0)


def prefetch_wants(request: HttpRequest) -> list[Any]:
    """The pins of the request's client (its token, its session, and the user this process last
    saw the token belong to), read with the request's other keys when it makes that round trip
    anyway: whichever read of the request needs them then takes them from there."""
    if not replicas_configured() or not request.path_info.startswith("/api/"):
        return []
    from videoplatform.cache import prefetch

    keys = request_client_keys(request)
    scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        digest = hashlib.sha256(token.strip().encode()).hexdigest()  # as the tokens cache keys it
        user_id = prefetch.hinted(prefetch.TOKEN_USER, digest)
        if user_id is not None:
            keys.add(user_key(user_id))
    return [prefetch.Raw(PIN_CACHE, PIN_PREFIX + key, optional=True) for key in sorted(keys)]


def pins_exist(keys: Iterable[str]) -> bool:
    return pinned_position(keys) > 0


def pin_user(user_id: str, *, window: int | None = None) -> None:
    """Pins every client of a user (all their tokens and sessions) to the primary's position now.

    For writes made on a user's behalf outside their own request: registration, a task.
    """
    if replicas_configured():
        pin_keys([user_key(str(user_id))], window=window)


def pin_current_client(*, window: int | None = None) -> None:
    """Pins the client of the current request or task now (e.g. after a write in a GET)."""
    context = _context.get()
    if context is not None and replicas_configured():
        pin_keys(context.keys(), window=window)


def note_write() -> None:
    """Called for every write on the primary: later reads of this context see it."""
    context = _context.get()
    if context is not None:
        context.note_write()


# --- use_primary -------------------------------------------------------------------


class PrimaryReads:
    """The object ``use_primary()`` returns: a context manager and a decorator."""

    def __init__(self) -> None:
        self._tokens: list[Token[int]] = []

    def __enter__(self) -> None:
        self._tokens.append(_use_primary.set(_use_primary.get() + 1))

    def __exit__(self, *exc_info: object) -> None:
        _use_primary.reset(self._tokens.pop())

    def __call__(self, func: F) -> F:
        @wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with PrimaryReads():
                return func(*args, **kwargs)

        return cast(F, wrapper)


@overload
def use_primary(func: None = None) -> PrimaryReads: ...
@overload
def use_primary(func: F) -> F: ...
def use_primary(func: F | None = None) -> PrimaryReads | F:
    """Reads in this block, or in the decorated function, go to the primary.

    ``with use_primary(): ...``, ``@use_primary`` or ``@use_primary()``. Nests; follows the
    context (thread, async task) it is entered in.
    """
    reads = PrimaryReads()
    return reads(func) if func is not None else reads


def primary_forced() -> bool:
    return _use_primary.get() > 0


# --- the decision --------------------------------------------------------------------


def read_alias() -> tuple[str, str]:
    """The alias a read of a replicated model goes to, and why."""
    replicas = replica_aliases()
    if not replicas:
        return PRIMARY, "no_replicas"
    if connections[PRIMARY].in_atomic_block:
        return PRIMARY, "atomic"
    if _use_primary.get():
        return PRIMARY, "use_primary"
    context = _context.get()
    if context is not None:
        if context.primary_reason:
            return PRIMARY, context.primary_reason
        if context.wrote:
            return PRIMARY, "wrote"
    from .replicas import monitor

    healthy = monitor.in_rotation(replicas)
    if not healthy:
        return PRIMARY, "replicas_unavailable"
    if context is None:
        return random.choice(healthy), "replica"
    required = context.required_lsn()
    if required >= UNKNOWN:  # a task published inside a transaction, or pins unreadable
        return PRIMARY, "task" if context.min_lsn >= UNKNOWN else "pins_unavailable"
    if context.replica in healthy and monitor.reached(context.replica, required):
        return cast(str, context.replica), "replica"
    alias = caught_up_replica(healthy, required)
    if alias is None:
        return PRIMARY, "replica_behind"
    context.replica = alias
    return alias, "replica"


def caught_up_replica(healthy: list[str], required: int) -> str | None:
    """A replica of ``healthy`` that has replayed ``required``: one known to have (no I/O),
    else the first a probe finds, else None."""
    from .replicas import monitor

    if required <= 0:
        return random.choice(healthy)
    known = [alias for alias in healthy if monitor.known(alias) >= required]
    if known:
        return random.choice(known)
    for alias in random.sample(healthy, len(healthy)):
        if monitor.reached(alias, required):
            return alias
    return None


def fill_route(required: int) -> tuple[str, str]:
    """Where a cache fill that needs position ``required`` reads: a caught-up replica in
    rotation (``fill_replica``), else the primary (``fill_primary``)."""
    replicas = replica_aliases()
    if not replicas or required >= UNKNOWN:
        return PRIMARY, "fill_primary"
    from .replicas import monitor

    healthy = monitor.in_rotation(replicas)
    alias = caught_up_replica(healthy, required) if healthy else None
    return (alias, "fill_replica") if alias is not None else (PRIMARY, "fill_primary")
