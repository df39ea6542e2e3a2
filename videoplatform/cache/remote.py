"""L2: entries, generations, epochs and fill locks in Redis (standalone or Cluster).

Keys (after the cache alias's ``KEY_PREFIX`` and version):

- ``c:{kind:scope}:variant``: an entry, a pickled ``Entry``;
- ``g:{kind:scope}``: the scope's generation, bumped by every invalidation of the scope, as
  ``"<n>:<lsn>"``: a counter and the highest WAL commit position of the writes that invalidated
  it (16 hex digits), which a fill's replica must have replayed;
- ``l:{kind:scope}:variant``: the lock of whoever is filling the entry (stampede control);
- ``e:kind``: the kind's epoch, bumped when a whole kind is invalidated; ``ew:kind`` the
  highest commit position of those invalidations.

The ``{kind:scope}`` hash tag puts an entry, its generation and its lock in one Redis Cluster
slot, so reading an entry with its generation is one ``MGET`` and the fenced store is one
script, on a standalone server and on a cluster alike. An entry is valid only while the
generation and epoch it was computed under are still current.
"""

from __future__ import annotations

import hashlib
import pickle
import socket
import threading
from typing import Any, Final, NamedTuple

from django.core.cache import caches
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import NoScriptError, RedisClusterException, RedisError

# What a Redis outage looks like from here: refused or timed-out connections, a cluster that is
# down or being resharded, a client that cannot be built.
L2_ERRORS: Final = (RedisError, RedisClusterException, ConnectionInterrupted, OSError, socket.timeout)

# Generations outlive the entries they fence (the longest TTL is a day).
GENERATION_TTL: Final = 3 * 24 * 3600

# KEYS: entry, generation. ARGV: generation read before loading ('' if none), value, ttl ms.
_STORE = """
local current = redis.call('GET', KEYS[2])
if (current or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""
# KEYS: generation, then entries to drop. ARGV: generation TTL in seconds, commit position
# (16 hex digits). The position kept is the highest ever given: fixed-width hex compares like
# the number it spells, so a writer that bumps late never lowers it.
_BUMP = """
local current = redis.call('GET', KEYS[1])
local n, lsn = 0, ''
if current then
    local sep = string.find(current, ':', 1, true)
    if sep then
        n = tonumber(string.sub(current, 1, sep - 1)) or 0
        lsn = string.sub(current, sep + 1)
    else
        n = tonumber(current) or 0
    end
end
if string.len(lsn) ~= string.len(ARGV[2]) or ARGV[2] > lsn then lsn = ARGV[2] end
local generation = string.format('%d', n + 1) .. ':' .. lsn
redis.call('SET', KEYS[1], generation, 'EX', ARGV[1])
for i = 2, #KEYS do redis.call('DEL', KEYS[i]) end
return generation
"""
# KEYS: a position. ARGV: commit position (16 hex digits). The highest one wins.
_MERGE_POSITION = """
local current = redis.call('GET', KEYS[1])
if not current or string.len(current) ~= string.len(ARGV[1]) or ARGV[1] > current then
    redis.call('SET', KEYS[1], ARGV[1])
    current = ARGV[1]
end
return current
"""
# KEYS: entry, generation, lock. ARGV: token, lock ttl ms. The entry and the generation, as one
# MGET reads them; when there is no entry, the fill lock is taken in the same step (a fill's
# first round trip: read and lock). Answers {entry, generation, 1 taken | 0 held by another | -1
# not tried (an entry is there)}.
_READ_OR_LOCK = """
local entry = redis.call('GET', KEYS[1])
local generation = redis.call('GET', KEYS[2])
local lock = -1
if not entry then
    if redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ARGV[2]) then lock = 1 else lock = 0 end
end
return {entry or false, generation or false, lock}
"""
# KEYS: entry, generation, lock. ARGV: generation read before loading, value, ttl ms, lock token
# ('' for none). The fenced store of _STORE and the release of the fill lock in one step.
_STORE_AND_UNLOCK = """
local stored = 0
local current = redis.call('GET', KEYS[2])
if (current or '') == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
    stored = 1
end
if ARGV[4] ~= '' and redis.call('GET', KEYS[3]) == ARGV[4] then redis.call('DEL', KEYS[3]) end
return stored
"""
# KEYS: lock. ARGV: token.
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


_SHAS: Final = {
    source: hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
    for source in (_STORE, _BUMP, _MERGE_POSITION, _UNLOCK, _READ_OR_LOCK, _STORE_AND_UNLOCK)
}


class Entry(NamedTuple):
    epoch: int
    generation: str
    fresh_until: float  # time.time()
    data: Any


def entry_key(kind: str, scope: str, variant: str = "") -> str:
    return f"c:{{{kind}:{scope}}}:{variant}"


def generation_key(kind: str, scope: str) -> str:
    return f"g:{{{kind}:{scope}}}"


def lock_key(kind: str, scope: str, variant: str = "") -> str:
    return f"l:{{{kind}:{scope}}}:{variant}"


def epoch_key(kind: str) -> str:
    return f"e:{kind}"


def epoch_position_key(kind: str) -> str:
    return f"ew:{kind}"


# A fill that must read the primary: the position of a write is unknown.
UNKNOWN_POSITION: Final = (1 << 64) - 1


def generation_position(generation: str) -> int:
    """The commit position a generation carries: 0 for no generation (nothing invalidated the
    scope within ``GENERATION_TTL``), ``UNKNOWN_POSITION`` for one written without a position."""
    if not generation:
        return 0
    _, sep, lsn = generation.partition(":")
    if not sep:
        return UNKNOWN_POSITION
    try:
        return int(lsn, 16)
    except ValueError:
        return UNKNOWN_POSITION


STATS_KEY: Final = "s:stats"


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


def _entry(raw: bytes | None) -> Entry | None:
    if raw is None:
        return None
    try:
        return Entry(*pickle.loads(raw))  # noqa: S301 - only RemoteTier.store writes these keys
    except Exception:  # noqa: BLE001 - an unreadable entry (another release's?) is a miss
        return None


decode_entry = _entry

_SERVER_FIELDS: Final = ("host", "port", "db", "path", "username")


def _server(client: Any) -> tuple[Any, ...] | None:
    pool = getattr(client, "connection_pool", None)
    if pool is None:  # a cluster client: its own keys only
        return None
    return tuple(pool.connection_kwargs.get(name) for name in _SERVER_FIELDS)


class RemoteTier:
    """The tiers' view of one django-redis cache alias (the ``default`` one)."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self._same_server: dict[str, bool] = {}
        self._cluster: bool | None = None
        # This thread's cache object for the alias, and whether it is Redis-backed: Django's
        # ``caches[alias]`` (one object per thread, behind asgiref's Local) was looked up about
        # thirteen times per read request. The tiers are rebuilt when CACHES changes (``core``).
        self._thread = threading.local()

    # --- plumbing ---------------------------------------------------------------------
    @property
    def cache(self) -> Any:
        try:
            return self._thread.cache
        except AttributeError:
            found = self._thread.cache = caches[self.alias]
            return found

    def available(self) -> bool:
        """False without a Redis-backed alias (the embedded default): the tiers then pass through."""
        try:
            return bool(self._thread.available)
        except AttributeError:
            client = getattr(self.cache, "client", None)
            found = self._thread.available = client is not None and hasattr(client, "get_client")
            return found

    def client(self) -> Any:
        return self.cache.client.get_client(write=True)

    def is_cluster(self) -> bool:
        if self._cluster is None:
            from redis.cluster import RedisCluster

            self._cluster = isinstance(self.client(), RedisCluster)
        return self._cluster

    def same_server(self, alias: str) -> bool:
        """Whether another django-redis alias keeps its keys where this one does (one round
        trip may read both); False for anything else."""
        if alias == self.alias:
            return True
        known = self._same_server.get(alias)
        if known is None:
            other = getattr(caches[alias], "client", None)
            if other is None or not hasattr(other, "get_client"):
                known = False
            else:
                mine = _server(self.client())
                known = mine is not None and mine == _server(other.get_client(write=True))
            self._same_server[alias] = known
        return known

    @staticmethod
    def alias_key(alias: str, raw: str) -> str:
        return str(caches[alias].make_key(raw))

    @staticmethod
    def decoder(alias: str) -> Any:
        """How the alias turns a stored value back into what its ``get`` answers."""
        return getattr(caches[alias], "client").decode  # noqa: B009 - django-redis only

    def prefetch(self, keys: list[str], counts: list[tuple[str, int, int]]) -> tuple[list[Any], list[int]]:
        """The values of ``keys`` and the totals of ``counts`` ((full key, amount, ttl): INCRBY
        then EXPIRE), in one round trip: one MGET, or a pipeline when there are counts or on a
        cluster (one GET per key: a cluster refuses MGET across slots)."""
        client = self.client()
        cluster = self.is_cluster()
        if not counts and not cluster:
            return list(client.mget(keys)), []
        pipe = client.pipeline(transaction=False)
        if cluster:
            for key in keys:
                pipe.get(key)
        elif keys:
            pipe.mget(keys)
        for key, amount, ttl in counts:
            pipe.incrby(key, amount)
            pipe.expire(key, ttl)
        replies = pipe.execute()
        if cluster:
            values, rest = list(replies[: len(keys)]), replies[len(keys) :]
        else:
            values, rest = (list(replies[0]) if keys else []), replies[1 if keys else 0 :]
        return values, [int(rest[2 * i]) for i in range(len(counts))]

    def key(self, raw: str) -> str:
        return str(self.cache.make_key(raw))

    def channel(self) -> str:
        """The invalidation channel: one per key prefix and database, like the keys themselves."""
        client = self.client()
        pool = getattr(client, "connection_pool", None)
        database = pool.connection_kwargs.get("db", 0) if pool is not None else 0
        return f"{self.key('invalidations')}:db{database}"

    def _script(self, source: str, keys: list[str], args: list[Any]) -> Any:
        client = self.client()
        try:
            return client.evalsha(_SHAS[source], len(keys), *keys, *args)
        except NoScriptError:  # first use on this server (or after SCRIPT FLUSH): EVAL loads it
            return client.eval(source, len(keys), *keys, *args)

    # --- entries ----------------------------------------------------------------------
    def read(self, kind: str, scope: str, variant: str) -> tuple[Entry | None, str, bool]:
        """The entry (or None), the scope's current generation, and whether a fill lock is held."""
        entry_raw, generation, lock = self.client().mget(
            [
                self.key(entry_key(kind, scope, variant)),
                self.key(generation_key(kind, scope)),
                self.key(lock_key(kind, scope, variant)),
            ]
        )
        return _entry(entry_raw), _text(generation), lock is not None

    def read_or_lock(
        self, kind: str, scope: str, variant: str, token: str, ttl_ms: int
    ) -> tuple[Entry | None, str, int]:
        """``read``, and when there is no entry the fill lock taken in the same round trip: (the
        entry or None, the generation, 1 lock taken with ``token`` | 0 held by another | -1 not
        tried because an entry is there)."""
        keys = [
            self.key(entry_key(kind, scope, variant)),
            self.key(generation_key(kind, scope)),
            self.key(lock_key(kind, scope, variant)),
        ]
        entry_raw, generation, lock = self._script(_READ_OR_LOCK, keys, [token, max(1, ttl_ms)])
        return _entry(entry_raw or None), _text(generation or None), int(lock)

    def store_and_unlock(
        self, kind: str, scope: str, variant: str, entry: Entry, ttl_ms: int, token: str | None
    ) -> bool:
        """``store`` and ``unlock`` in one round trip (``token`` None: no lock to release)."""
        blob = pickle.dumps(tuple(entry), protocol=pickle.HIGHEST_PROTOCOL)
        keys = [
            self.key(entry_key(kind, scope, variant)),
            self.key(generation_key(kind, scope)),
            self.key(lock_key(kind, scope, variant)),
        ]
        args = [entry.generation, blob, max(1, ttl_ms), token or ""]
        return bool(self._script(_STORE_AND_UNLOCK, keys, args))

    def read_many(self, kind: str, scopes: list[str]) -> list[tuple[Entry | None, str]]:
        """(entry, generation) of each scope's single entry, in one pipeline.

        Two GETs per scope (a cluster pipeline refuses MGET), the entry first: a generation bumped
        between them makes the entry look stale, never the other way round.
        """
        pipe = self.client().pipeline(transaction=False)
        for scope in scopes:
            pipe.get(self.key(entry_key(kind, scope)))
            pipe.get(self.key(generation_key(kind, scope)))
        replies = pipe.execute()
        return [(_entry(replies[i]), _text(replies[i + 1])) for i in range(0, len(replies), 2)]

    def read_keys(self, keys: list[tuple[str, str, str]]) -> list[tuple[Entry | None, str]]:
        """(entry, generation) of each (kind, scope, variant), in one pipeline, as ``read_many``."""
        pipe = self.client().pipeline(transaction=False)
        for kind, scope, variant in keys:
            pipe.get(self.key(entry_key(kind, scope, variant)))
            pipe.get(self.key(generation_key(kind, scope)))
        replies = pipe.execute()
        return [(_entry(replies[i]), _text(replies[i + 1])) for i in range(0, len(replies), 2)]

    def store(self, kind: str, scope: str, variant: str, entry: Entry, ttl_ms: int) -> bool:
        """Writes ``entry`` unless the scope's generation moved past ``entry.generation``."""
        blob = pickle.dumps(tuple(entry), protocol=pickle.HIGHEST_PROTOCOL)
        keys = [self.key(entry_key(kind, scope, variant)), self.key(generation_key(kind, scope))]
        return bool(self._script(_STORE, keys, [entry.generation, blob, max(1, ttl_ms)]))

    def bump(self, kind: str, scope: str, position: str) -> str:
        """Invalidates every entry of the scope (its generation moves on, carrying the highest
        commit ``position`` given so far); the new generation."""
        keys = [self.key(generation_key(kind, scope)), self.key(entry_key(kind, scope))]
        return _text(self._script(_BUMP, keys, [GENERATION_TTL, position]))

    # --- epochs -----------------------------------------------------------------------
    def epoch(self, kind: str) -> int:
        return int(_text(self.client().get(self.key(epoch_key(kind)))) or 0)

    def epochs(self, kinds: tuple[str, ...]) -> dict[str, int]:
        client = self.client()
        return {kind: int(_text(client.get(self.key(epoch_key(kind)))) or 0) for kind in kinds}

    def epoch_positions(self, kinds: tuple[str, ...]) -> dict[str, int]:
        client = self.client()
        raw = {kind: _text(client.get(self.key(epoch_position_key(kind)))) for kind in kinds}
        return {kind: generation_position("0:" + value) if value else 0 for kind, value in raw.items()}

    def bump_epoch(self, kind: str, position: str) -> tuple[int, int]:
        """The kind's new epoch, and the highest commit position of its invalidations."""
        # The position first: whoever sees the new epoch finds a position that covers it.
        lsn = self._script(_MERGE_POSITION, [self.key(epoch_position_key(kind))], [position])
        epoch = int(self.client().incr(self.key(epoch_key(kind))))
        return epoch, generation_position("0:" + _text(lsn))

    # --- fill locks -------------------------------------------------------------------
    def lock(self, kind: str, scope: str, variant: str, token: str, ttl_ms: int) -> bool:
        key = self.key(lock_key(kind, scope, variant))
        return bool(self.client().set(key, token, nx=True, px=ttl_ms))

    def unlock(self, kind: str, scope: str, variant: str, token: str) -> None:
        self._script(_UNLOCK, [self.key(lock_key(kind, scope, variant))], [token])

    # --- feed -------------------------------------------------------------------------
    def publish(self, message: str) -> None:
        self.client().publish(self.channel(), message)

    # --- operators --------------------------------------------------------------------
    def scan(self, raw_pattern: str) -> list[str]:
        """Full key names matching a pattern of raw keys (every master of a cluster)."""
        from redis.cluster import RedisCluster

        client = self.client()
        pattern = self.key(raw_pattern)
        if isinstance(client, RedisCluster):
            found = client.scan_iter(match=pattern, count=500, target_nodes=RedisCluster.PRIMARIES)
        else:
            found = client.scan_iter(match=pattern, count=500)
        return [_text(key) for key in found]

    def delete(self, full_keys: list[str]) -> int:
        client = self.client()
        deleted = 0
        for start in range(0, len(full_keys), 500):
            batch = full_keys[start : start + 500]
            # One key per command: a cluster refuses DEL over keys of several slots.
            pipe = client.pipeline(transaction=False)
            for key in batch:
                pipe.delete(key)
            deleted += sum(int(n) for n in pipe.execute())
        return deleted

    def stats_add(self, counts: dict[str, int]) -> None:
        if not counts:
            return
        key = self.key(STATS_KEY)
        pipe = self.client().pipeline(transaction=False)
        for field, value in counts.items():
            pipe.hincrby(key, field, value)
        pipe.execute()

    def stats_read(self) -> dict[str, int]:
        raw = self.client().hgetall(self.key(STATS_KEY))
        return {_text(field): int(value) for field, value in raw.items()}

    def stats_reset(self) -> None:
        self.client().delete(self.key(STATS_KEY))
