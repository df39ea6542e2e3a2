"""One Redis round trip for what a read request is going to ask Redis for.

A read request used to make one round trip per thing it looked up: its bearer token's snapshot,
its throttle count (the first request of a window in a process), each cache entry that was not in
L1 (the video, its owner's profile, the ladder, the viewer's subscription) and, with replicas,
its client's read-your-writes pins. Most of those keys are known from the request alone (its
path, its ``Authorization`` header, its address) or from what this process saw before (which user
a token belongs to, which user owns a video). ``PrefetchMiddleware`` (in ``middleware``) asks the
registered *providers* what the request will read, and fetches all of it in one round trip (one
``MGET`` on a Redis server, plus the throttle's ``INCRBY`` in the same pipeline; a pipeline of
``GET``s on a Redis Cluster). The readers then take their value from the batch instead of asking
Redis:

- the tiers (``core.Tiers.fetch``): an entry and its generation, read together as ``RemoteTier.read``
  reads them, with the L1 invalidation mark and the epoch noted *before* the read, exactly as a
  read of its own would note them; a prefetched entry is used only under the same epoch;
- ``take_raw``: plain keys of a django-redis alias on the same server (tokens, pins), decoded as
  that alias decodes them;
- ``take_count``: a throttle count added in the same round trip.

Each value is taken at most once, so a second read of the same key in the request asks Redis as
before. A value is as old as the start of the request: the same as if the reader had read it
then. Nothing is prefetched when L2 is unusable, and a prefetch that fails leaves every reader to
read for itself (and report the error as it does).

Hints (``hint``/``hinted``) are what this process learnt of immutable or slowly changing links (a
token's user, a video's owner), bounded in size; a wrong hint costs only a key nobody takes.
``videoplatform.cache.middleware.PrefetchMiddleware`` makes the round trip.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Final

from django.http import HttpRequest

HINTS_MAX: Final = 100_000
# The hint from a bearer token's digest (SHA-256, hex) to its user's id: a token never changes hands.
TOKEN_USER: Final = "token_user"  # noqa: S105 - a name, not a secret
SAFE_METHODS: Final = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class Entry:
    """A tier entry the request will read (kind, scope, variant)."""

    kind: str
    scope: str
    variant: str = ""


@dataclass(frozen=True)
class Raw:
    """A key of a django-redis cache alias (the key as given to that cache, before its prefix).
    ``optional``: read only when the request makes its round trip for something else anyway."""

    alias: str
    key: str
    optional: bool = False


@dataclass(frozen=True)
class Count:
    """A counter of the "default" alias the request adds ``amount`` to (a throttle window),
    kept ``ttl`` seconds."""

    key: str
    ttl: int
    amount: int = 1


Want = Entry | Raw | Count
Provider = Callable[[HttpRequest], Iterable[Want]]


@dataclass
class Batch:
    # (kind, scope, variant) -> (entry bytes or None, generation, epoch, L1 mark)
    entries: dict[tuple[str, str, str], tuple[Any, str, int, tuple[int, int]]] = field(default_factory=dict)
    raw: dict[tuple[str, str], Any] = field(default_factory=dict)  # undecoded values
    counts: dict[str, int] = field(default_factory=dict)
    decoders: dict[str, Callable[[Any], Any]] = field(default_factory=dict)
    # (alias, key) -> value this request read already (decoded), e.g. the token the response
    # cache checked before handing the request to Django.
    known: dict[tuple[str, str], Any] = field(default_factory=dict)


_providers: list[Provider] = []
_current: ContextVar[Batch | None] = ContextVar("videoplatform_cache_prefetch", default=None)
_hints: dict[str, dict[str, str]] = {}
_hints_lock = threading.Lock()


def register(provider: Provider) -> None:
    """Adds a provider (once): ``provider(request)`` names what a GET request will read."""
    if provider not in _providers:
        _providers.append(provider)


def hint(name: str, key: str, value: str) -> None:
    """Remembers that ``key`` leads to ``value`` (e.g. a token digest to its user's id)."""
    table = _hints.get(name)
    if table is None:
        with _hints_lock:
            table = _hints.setdefault(name, {})
    if table.get(key) == value:
        return
    if len(table) >= HINTS_MAX:
        table.clear()  # bounded; the hints come back as requests read the links again
    table[key] = value


def hinted(name: str, key: str) -> str | None:
    table = _hints.get(name)
    return None if table is None else table.get(key)


def wants(request: HttpRequest) -> list[Want]:
    found: list[Want] = []
    for provider in _providers:
        found.extend(provider(request))
    return found


def start(batch: Batch | None) -> Any:
    return _current.set(batch)


def stop(token: Any) -> None:
    _current.reset(token)


def active() -> bool:
    return _current.get() is not None


def current() -> Batch | None:
    return _current.get()


def remember(alias: str, key: str, value: Any) -> None:
    """A value the request read by itself (decoded): later readers in the request take it
    instead of reading it again (``take_raw``), and the request's round trip leaves it out."""
    batch = _current.get()
    if batch is not None:
        batch.known[(alias, key)] = value


def take_entry(kind: str, scope: str, variant: str) -> tuple[Any, str, int, tuple[int, int]] | None:
    """The prefetched (entry bytes or None, generation, epoch, mark) of an entry, once."""
    batch = _current.get()
    if batch is None or not batch.entries:
        return None
    return batch.entries.pop((kind, scope, variant), None)


_NOTHING: Final = object()


def take_raw(alias: str, key: str, *, decode: bool = True) -> tuple[bool, Any]:
    """(True, the value as the alias's ``get`` answers it, or the stored bytes without
    ``decode``) if the key was prefetched, once; (False, None) otherwise."""
    batch = _current.get()
    if batch is None:
        return False, None
    if decode and batch.known:
        known = batch.known.pop((alias, key), _NOTHING)
        if known is not _NOTHING:
            return True, known
    if not batch.raw:
        return False, None
    raw = batch.raw.pop((alias, key), _NOTHING)
    if raw is _NOTHING:
        return False, None
    if raw is None or not decode:
        return True, raw
    return True, batch.decoders[alias](raw)


def take_count(key: str) -> int | None:
    """The total a prefetched ``Count`` answered (this request included), once."""
    batch = _current.get()
    if batch is None or not batch.counts:
        return None
    return batch.counts.pop(key, None)
