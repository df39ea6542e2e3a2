"""Where a read goes: the primary or a healthy replica.

Every request and every Celery task runs in a *routing context* (a contextvar, so threads and
async tasks each see their own). A read goes to the primary when it runs inside a transaction,
inside ``use_primary()``, in an unsafe request, after a write in the same context, in a task
enqueued a moment ago, or when its client is *pinned*: the client wrote within the
read-your-writes window. Pins live in the "default" cache (Redis), so every pod sees them.
Otherwise the read goes to a replica in rotation (see ``replicas``), the same one for the whole
context.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, TypeVar, cast, overload

from django.conf import settings
from django.core.cache import caches
from django.db import connections
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject, empty

from .aliases import PRIMARY, replica_aliases

F = TypeVar("F", bound=Callable[..., Any])

PIN_PREFIX = "ryw:"
PIN_CACHE = "default"


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
    _pin_checked: frozenset[str] = frozenset()
    _pinned: bool = False

    def keys(self) -> set[str]:
        if self.request is None:
            return set(self.client_keys)
        return self.client_keys | request_client_keys(self.request)

    def is_pinned(self) -> bool:
        """Whether the client wrote within the window. At most one cache read per new key."""
        if self._pinned:
            return True
        keys = frozenset(self.keys())
        unchecked = keys - self._pin_checked
        if not unchecked:
            return False
        self._pin_checked = keys
        self._pinned = pins_exist(unchecked)
        return self._pinned


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
    *, client_keys: Iterable[str] = (), primary_reason: str | None = None
) -> Iterator[RoutingContext]:
    """Runs a block in its own routing context (what the middleware and task hooks do)."""
    context = RoutingContext(client_keys=set(client_keys), primary_reason=primary_reason)
    token = _context.set(context)
    try:
        yield context
    finally:
        _context.reset(token)


# --- read-your-writes pins ---------------------------------------------------------


def replicas_configured() -> bool:
    return bool(settings.REPLICA_DATABASES)


def pin_keys(keys: Iterable[str], *, window: int | None = None) -> None:
    """Sends these clients' reads to the primary for the read-your-writes window."""
    entries = {PIN_PREFIX + key: 1 for key in keys}
    if entries:
        timeout = window if window is not None else settings.DB_READ_YOUR_WRITES_WINDOW
        caches[PIN_CACHE].set_many(entries, timeout=timeout)


def pins_exist(keys: Iterable[str]) -> bool:
    names = [PIN_PREFIX + key for key in keys]
    return bool(names) and bool(caches[PIN_CACHE].get_many(names))


def pin_user(user_id: str, *, window: int | None = None) -> None:
    """Pins every client of a user (all their tokens and sessions) to the primary.

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
        context.wrote = True


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
    if context.is_pinned():
        return PRIMARY, "pinned"
    if context.replica not in healthy:
        context.replica = random.choice(healthy)
    return cast(str, context.replica), "replica"
