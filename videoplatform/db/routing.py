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


def new_token_pin_key(token: str) -> str:
    """The pin of a token's own row (its issue), read by token lookups only: a login does not
    hold its client's other reads (L1 among them) to its position."""
    return "n:" + _digest(token)


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
    # What answers kept in this process (L1, the response cache) must reflect (None: not known yet).
    _local_lsn: int | None = None

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
            self._pin_checked = self._pin_checked | keys
            self._pin_lsn = max(self._pin_lsn, pinned_position(unchecked))
        return max(self._pin_lsn, self.min_lsn)

    def learn_pin(self, key: str, lsn: int) -> None:
        """A pin read along with something else (the token check): later decisions reuse it."""
        self._pin_checked = self._pin_checked | {key}
        self._pin_lsn = max(self._pin_lsn, lsn)
        if self._local_lsn is not None:
            self._local_lsn = max(self._local_lsn, lsn)

    def local_lsn(self) -> int:
        """The position an answer kept in this process must reflect to serve this context: the
        pins of its credentials (bearer token, session; the token's comes with the token check,
        so a bearer-token request reads nothing here), any pin already read for it (its user's),
        and a task's position. Memoised for the context; ``UNKNOWN`` when pins are unreadable."""
        if self._local_lsn is None:
            keys = self.keys()
            unchecked = frozenset(key for key in keys - self._pin_checked if not key.startswith("u:"))
            if unchecked:
                self._pin_checked = self._pin_checked | unchecked
                self._pin_lsn = max(self._pin_lsn, pinned_position(unchecked))
            self._local_lsn = max(self._pin_lsn, self.min_lsn)
        return self._local_lsn

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


def entry_and_pins(cache: Any, entry_key: str, pins: list[str]) -> tuple[Any, list[int | None] | None]:
    """One entry of ``cache`` and the raw values of ``pins`` (pin keys without the prefix, e.g.
    ``token_pin_key(...)``; None for a pin that is not set), in one round trip when both caches
    live on the same Redis. The pins are None when they cannot be read (Redis down), or without
    replicas (nothing to decide). The entry is read as ``cache.get`` reads it (None on errors).
    """
    if not replicas_configured():
        return cache.get(entry_key), None
    pin_cache = caches[PIN_CACHE]
    names = [pin_cache.make_key(PIN_PREFIX + key) for key in pins]
    try:
        entry_client, pin_client = _redis_client(cache), _redis_client(pin_cache)
    except Exception as exc:  # noqa: BLE001 - no connection: as if Redis did not answer
        _pins_failed("read", exc)
        return cache.get(entry_key), None
    from redis.cluster import RedisCluster

    shared = (
        entry_client is not None
        and pin_client is not None
        and not isinstance(pin_client, RedisCluster)
        and not isinstance(entry_client, RedisCluster)
        and entry_client.connection_pool is pin_client.connection_pool
    )
    if not shared or time.monotonic() < _pins_down_until:
        values = None if time.monotonic() < _pins_down_until else _pin_values(pins)
        return cache.get(entry_key), values
    try:
        pipe = entry_client.pipeline(transaction=False)
        pipe.get(cache.make_key(entry_key))
        pipe.mget(names)
        raw_entry, raw_pins = pipe.execute()
    except Exception as exc:  # noqa: BLE001 - Redis down: a miss, and pins unknown
        _pins_failed("read", exc)
        return None, None
    entry = None if raw_entry is None else cache.client.decode(raw_entry)
    return entry, [from_hex(value) for value in raw_pins]


def _pin_values(keys: list[str]) -> list[int | None] | None:
    """The raw values of these pins (None where unset), or None when they cannot be read."""
    cache = caches[PIN_CACHE]
    names = [PIN_PREFIX + key for key in keys]
    try:
        client = _redis_client(cache)
        if client is None:
            found = cache.get_many(names)
            return [from_hex(found.get(name)) for name in names]
        full = [cache.make_key(name) for name in names]
        from redis.cluster import RedisCluster

        if isinstance(client, RedisCluster):
            return [from_hex(client.get(key)) for key in full]
        return [from_hex(value) for value in client.mget(full)]
    except Exception as exc:  # noqa: BLE001 - unknown: the caller reads the primary
        _pins_failed("read", exc)
        return None


def learn_pin(key: str, lsn: int) -> None:
    """Tells the current context a pin read with something else (see ``entry_and_pins``)."""
    context = _context.get()
    if context is not None:
        context.learn_pin(key, lsn)


def local_position() -> int:
    """The position an answer kept in this process (an L1 entry, a shared response) must
    reflect to be served to the current client (``RoutingContext.local_lsn``); 0 outside a
    routing context or without replicas."""
    context = _context.get()
    if context is None or not settings.REPLICA_DATABASES:
        return 0
    return context.local_lsn()


def pin_new_client(key: str) -> None:
    """Pins a credential this request or task just created (a login's token) with the context's
    other keys at its commit position; outside a context, on commit, to the primary's position."""
    if not replicas_configured():
        return
    context = _context.get()
    if context is not None:
        context.client_keys.add(key)
        context.note_write()
    else:
        pin_keys([key])


# --- the positions a token check needs ----------------------------------------------------
# Revocations and user changes record their commit position here (max-merged, like a pin):
# a token lookup reads a replica only once it has replayed the last one.
REVOCATIONS_KEY = "revocations"


def current_commit_position() -> int:
    """The commit position covering the current context's writes (after its commit), or the
    primary's position now outside a context; 0 without replicas (nothing waits for it)."""
    if not replicas_configured():
        return 0
    context = _context.get()
    return context.commit_lsn() if context is not None else commit_position()


def revocation_recorded(lsn: int | None = None) -> None:
    """Records a revocation (or a change of what a token check reads) that has committed.

    ``lsn`` defaults to the commit position of the current context (read after the commit). An
    unknown position deletes the record: token lookups read the primary until one is
    re-established from the primary's position (``revocations_reestablish``).
    """
    if not replicas_configured():
        return
    if lsn is None:
        lsn = current_commit_position()
    if lsn >= UNKNOWN:
        try:
            caches[PIN_CACHE].delete(PIN_PREFIX + REVOCATIONS_KEY)
        except Exception as exc:  # noqa: BLE001 - Redis down: its readers read the primary anyway
            _pins_failed("written", exc)
        return
    pin_keys([REVOCATIONS_KEY], lsn, window=int(settings.AUTH_TOKEN_CACHE_TTL))


def revocations_reestablish() -> None:
    """After the revocation record was lost (Redis flushed or restarted, expired): the
    primary's position now covers every revocation committed so far. Set only if still absent
    (a concurrent revocation's own record is never lowered)."""
    if not replicas_configured():
        return
    position = commit_position()
    if position >= UNKNOWN:
        return
    cache, ttl = caches[PIN_CACHE], int(settings.AUTH_TOKEN_CACHE_TTL)
    try:
        client = _redis_client(cache)
        if client is None:
            cache.add(PIN_PREFIX + REVOCATIONS_KEY, to_hex(position), timeout=ttl)
        else:  # raw, as the merge script writes pins
            name = cache.make_key(PIN_PREFIX + REVOCATIONS_KEY)
            client.set(name, to_hex(position), nx=True, ex=max(1, ttl))
    except Exception as exc:  # noqa: BLE001 - tried again by the next lookup that misses it
        _pins_failed("written", exc)


def token_route(required: int | None) -> tuple[str, str]:
    """Where a token lookup reads: a replica in rotation that has replayed ``required`` (None:
    unknown), else the primary; counted in ``db_reads_routed_total``."""
    alias, reason = _token_route(required)
    from videoplatform.metrics import DB_READS_ROUTED

    DB_READS_ROUTED.labels(alias, reason).inc()
    return alias, reason


def _token_route(required: int | None) -> tuple[str, str]:
    replicas = replica_aliases()
    if not replicas:
        return PRIMARY, "no_replicas"
    if connections[PRIMARY].in_atomic_block:
        return PRIMARY, "atomic"
    if _use_primary.get():
        return PRIMARY, "use_primary"
    if required is None or required >= UNKNOWN:
        return PRIMARY, "token_unknown"
    from .replicas import monitor

    healthy = monitor.in_rotation(replicas)
    alias = caught_up_replica(healthy, required) if healthy else None
    return (alias, "token_replica") if alias is not None else (PRIMARY, "token_behind")


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
