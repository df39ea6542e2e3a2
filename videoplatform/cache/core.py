"""L1 (this process) in front of L2 (Redis or Redis Cluster) in front of the database.

Reads (``fetch``) are cache-aside: L1, then L2, then the loader, whose result is stored in L2
*fenced* by the scope's generation read before loading (a read that started before an
invalidation never stores its old value after it) and then in L1 if no invalidation of the kind
reached this process meanwhile. Concurrent misses on one entry make one load: threads of a process
wait for the first one's result; processes take a short-lived fill lock in Redis and the others
wait briefly for the entry, or get the previous value if it had only expired.

Writes (``invalidate``, ``refresh``, normally through ``invalidate_on_commit`` and
``refresh_on_commit`` so that a rolled-back transaction touches nothing) bump the scope's
generation, drop this process's L1 entries and tell every other process over the invalidation
feed; ``refresh`` then writes the new value through to L2.

When Redis does not answer, every read goes to the database: errors are counted and logged
(at most every ten seconds), L2 is left alone for ``CACHE_L2_RETRY_AFTER`` seconds, and L1 is
off for as long as the invalidation feed is down.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.conf import settings
from django.core.signals import setting_changed
from django.db import DEFAULT_DB_ALIAS, connections, transaction

from videoplatform.db.routing import local_position
from videoplatform.metrics import CACHE_FEED_CONNECTED

from . import kinds, prefetch
from .feed import InvalidationFeed
from .fills import filling
from .hooks import loading, note_read, taint
from .local import Key, LocalTier
from .remote import (
    L2_ERRORS,
    UNKNOWN_POSITION,
    Entry,
    RemoteTier,
    decode_entry,
    entry_key,
    generation_key,
    generation_position,
)
from .stats import FEED, L1, L2, Stats

logger = logging.getLogger(__name__)

T = TypeVar("T")
Loader = Callable[[], T]
ManyLoader = Callable[[list[str]], Mapping[str, Any]]

# Invalidations that could not reach Redis are retried when it answers again; past this many
# scopes, the whole kind is invalidated instead.
_PENDING_LIMIT = 10_000
_LOG_EVERY = 10.0


@dataclass
class _Flight:
    """One load in progress in this process; others asking for the same entry wait for it."""

    done: threading.Event = field(default_factory=threading.Event)
    ok: bool = False
    data: Any = None


def active() -> bool:
    """Whether reads may use the tiers: not inside a transaction (its writes may roll back,
    and its reads must see its own writes), and not switched off by ``CACHE_TIERS_ENABLED``."""
    return bool(settings.CACHE_TIERS_ENABLED) and not connections[DEFAULT_DB_ALIAS].in_atomic_block


class Tiers:
    def __init__(self, alias: str) -> None:
        self.pid = os.getpid()
        self.origin = f"{socket.gethostname()}:{self.pid}:{uuid.uuid4().hex[:8]}"
        self.remote = RemoteTier(alias)
        self.l1 = LocalTier(settings.CACHE_L1_MAX_ENTRIES)
        self.stats = Stats()
        self.feed = InvalidationFeed(
            self.remote,
            origin=self.origin,
            lease=float(settings.CACHE_FEED_LEASE),
            on_message=self._apply,
            on_connected=self._feed_connected,
            on_lost=self._feed_lost,
            on_idle=self._idle,
        )
        self._epochs: dict[str, int] = {}
        # The commit position of each kind's last epoch bump (kept with the epoch by the feed).
        self._epoch_positions: dict[str, int] = {}
        self._flights: dict[tuple[Key, int | None], _Flight] = {}
        self._flights_lock = threading.Lock()
        self._pending: dict[str, set[str]] = {}
        self._pending_kinds: set[str] = set()
        self._pending_lock = threading.Lock()
        self._l2_down_until = 0.0
        self._last_log = 0.0
        self._next_flush = 0.0

    # ===== reads ===========================================================================
    def fetch(self, kind: str, scope: str, loader: Loader[T], *, variant: str = "") -> T:
        """The entry ``(kind, scope, variant)``; ``loader()`` reads the database on a miss.

        ``loader`` returns plain data (see ``snapshots``), ``None`` included: "no such row" is
        cached like any value.
        """
        if not kinds.cacheable(scope, variant):
            taint()
            return loader()
        if self.remote.available():
            self.feed.ensure_started()
        key: Key = (kind, scope, variant)
        alive = self.feed.alive()
        epoch = self._epoch(kind, alive)
        if alive and epoch is not None:
            entry = self.l1.entry(key, epoch)
            # A client pinned past what the entry reflects may have written to it through another
            # process, whose invalidation has not reached this one yet: it reads L2.
            if entry is not None and entry.position >= local_position():
                self.stats.lookup(L1, kind, "hit")
                note_read(self, key, entry)
                return entry.data  # type: ignore[no-any-return]
            self.stats.lookup(L1, kind, "miss")
        mark = self.l1.mark(kind)
        # Read at the start of the request with the request's other keys (``prefetch``): under
        # the same epoch, with the L1 mark noted before that read.
        read = prefetch.take_entry(kind, scope, variant) if alive and epoch is not None else None
        if read is not None:
            if read[2] == epoch:
                mark = read[3]
            else:
                read = None

        if local_position() > 0:
            # Nor does it share another request's load, whose L2 read may precede its write.
            data, l1_ttl, position = self._through_l2(kind, scope, variant, loader, epoch, read)
            self._hold(key, epoch, data, l1_ttl, alive, mark, position)
            return data  # type: ignore[no-any-return]
        flight_key = (key, epoch)
        with self._flights_lock:
            flight = self._flights.get(flight_key)
            leader = flight is None
            if flight is None:
                flight = self._flights[flight_key] = _Flight()
        if not leader:
            taint()  # another request's load: an answer built from it is not kept (response_cache)
            if flight.done.wait(settings.CACHE_STAMPEDE_WAIT) and flight.ok:
                self.stats.shared(kind)
                return flight.data  # type: ignore[no-any-return]
            return self._load(kind, loader)

        l1_ttl, position = 0.0, 0
        try:
            flight.data, l1_ttl, position = self._through_l2(kind, scope, variant, loader, epoch, read)
            flight.ok = True
        finally:
            flight.done.set()
            with self._flights_lock:
                if self._flights.get(flight_key) is flight:
                    del self._flights[flight_key]
        self._hold(key, epoch, flight.data, l1_ttl, alive, mark, position)
        return flight.data  # type: ignore[no-any-return]

    def _hold(
        self,
        key: Key,
        epoch: int | None,
        data: Any,
        l1_ttl: float,
        alive: bool,
        mark: tuple[int, int],
        position: int,
    ) -> None:
        """Keeps what ``fetch`` read in L1 (reflecting WAL ``position``) when it may."""
        held = None
        if l1_ttl > 0 and epoch is not None and alive and self.feed.alive():
            held = self.l1.put(key, epoch, data, l1_ttl, mark=mark, position=position)
        if held is not None:
            note_read(self, key, held)  # what this request shows is now L1's entry
        else:
            taint()

    def fetch_many(self, kind: str, scopes: Iterable[str], loader: ManyLoader) -> dict[str, Any]:
        """Entries of many scopes of one kind (one entry each): {scope: data}, data None for
        absent rows. ``loader(missing)`` reads every miss in one go. One scope alone goes through
        ``fetch`` (and its stampede control); several share one pipeline and one load."""
        wanted = list(dict.fromkeys(scopes))
        if len(wanted) == 1:
            scope = wanted[0]
            return {scope: self.fetch(kind, scope, lambda: loader([scope]).get(scope))}
        found: dict[str, Any] = {}
        cacheable = [scope for scope in wanted if kinds.cacheable(scope, "")]
        if len(cacheable) < len(wanted):
            taint()
            passed = [scope for scope in wanted if scope not in cacheable]
            loaded_directly = loader(passed)
            found.update({scope: loaded_directly.get(scope) for scope in passed})
        if not cacheable:
            return found
        if self.remote.available():
            self.feed.ensure_started()
        alive = self.feed.alive()
        epoch = self._epoch(kind, alive)
        missing = []
        needed = local_position()
        for scope in cacheable:
            held = self.l1.entry((kind, scope, ""), epoch) if alive and epoch is not None else None
            if held is not None and held.position < needed:
                held = None  # see fetch: a pinned client past the entry reads L2
            if held is None:
                if alive and epoch is not None:
                    self.stats.lookup(L1, kind, "miss")
                missing.append(scope)
            else:
                self.stats.lookup(L1, kind, "hit")
                note_read(self, (kind, scope, ""), held)
                found[scope] = held.data
        if not missing:
            return found
        # Each missing scope below is either kept in L1 (``_keep`` notes the entry the answer
        # shows) or taints the request: a page whose owners were partly refilled is kept whole.
        mark = self.l1.mark(kind)
        generations: dict[str, str] = {}
        if epoch is not None and not self._l2_usable():
            epoch = None
        if epoch is not None:
            try:
                read = self.remote.read_many(kind, missing)
            except L2_ERRORS as exc:
                self._l2_failed(kind, exc)
                epoch = None
            else:
                now, still_missing = time.time(), []
                for scope, (entry, generation) in zip(missing, read, strict=True):
                    valid = entry is not None and entry.epoch == epoch and entry.generation == generation
                    if entry is not None and valid and entry.fresh_until > now:
                        self.stats.lookup(L2, kind, "hit")
                        found[scope] = entry.data
                        ttl = entry.fresh_until - now
                        self._keep(kind, scope, epoch, entry.data, ttl, alive, mark, _covered(generation))
                    else:
                        self.stats.lookup(L2, kind, "miss")
                        generations[scope] = generation
                        still_missing.append(scope)
                missing = still_missing
        if not missing:
            return found
        self.stats.load(kind)
        if epoch is None:
            position = UNKNOWN_POSITION
        else:
            position = max(self._fill_position(kind, generations[scope]) for scope in missing)
        with loading(), filling(position):
            loaded = loader(missing)
        for scope in missing:
            data = loaded.get(scope)
            found[scope] = data
            if epoch is not None and self._store(kind, scope, "", epoch, generations[scope], data):
                covered = _covered(generations[scope])
                self._keep(kind, scope, epoch, data, kinds.ttl(kind), alive, mark, covered)
            else:
                taint()
        return found

    def _keep(
        self,
        kind: str,
        scope: str,
        epoch: int,
        data: Any,
        ttl: float,
        alive: bool,
        mark: tuple[int, int],
        position: int,
    ) -> None:
        held = None
        if alive and self.feed.alive():
            l1_ttl = min(float(settings.CACHE_L1_TTL), ttl)
            held = self.l1.put((kind, scope, ""), epoch, data, l1_ttl, mark=mark, position=position)
        if held is not None:
            note_read(self, (kind, scope, ""), held)
        else:
            taint()

    def _through_l2(
        self,
        kind: str,
        scope: str,
        variant: str,
        loader: Loader[Any],
        epoch: int | None,
        read: tuple[Any, str, int, tuple[int, int]] | None = None,
    ) -> tuple[Any, float, int]:
        """(data, seconds L1 may keep it: 0 for not at all, the WAL position it reflects).
        ``read``: the entry and generation prefetched with the request's other keys; anything but
        a current, fresh entry there is read again here (with the fill lock)."""
        if epoch is None or not self._l2_usable():
            return self._load(kind, loader), 0.0, 0
        if read is not None:
            found, now = decode_entry(read[0]), time.time()
            current = found is not None and found.epoch == epoch and found.generation == read[1]
            if current and found is not None and found.fresh_until > now:
                self.stats.lookup(L2, kind, "hit")
                ttl = min(float(settings.CACHE_L1_TTL), found.fresh_until - now)
                return found.data, ttl, _covered(read[1])
        # One round trip: the entry, its scope's generation and, when there is no entry, the fill
        # lock (taken with ``token``; ``locked`` 1 taken, 0 held by another, -1 not tried).
        token: str | None = uuid.uuid4().hex
        try:
            entry, generation, locked = self.remote.read_or_lock(
                kind, scope, variant, str(token), self._lock_ttl_ms()
            )
        except L2_ERRORS as exc:
            self._l2_failed(kind, exc)
            return self._load(kind, loader), 0.0, 0
        now = time.time()
        if entry is not None and entry.epoch == epoch and entry.generation == generation:
            if entry.fresh_until > now:
                self.stats.lookup(L2, kind, "hit")
                ttl = min(float(settings.CACHE_L1_TTL), entry.fresh_until - now)
                return entry.data, ttl, _covered(generation)
            token = self._lock(kind, scope, variant)
            if token is None:  # someone else refreshes it: the previous value meanwhile
                self.stats.lookup(L2, kind, "stale")
                return entry.data, 0.0, 0
            self.stats.lookup(L2, kind, "miss")
            return self._fill(kind, scope, variant, loader, epoch, generation, token)
        self.stats.lookup(L2, kind, "miss")
        if locked < 0:  # an entry of another epoch or generation is there: the lock was not tried
            token = self._lock(kind, scope, variant)
        elif locked == 0:
            token = None
        if token is None and self._l2_usable():
            waited = self._await_fill(kind, scope, variant, epoch)
            if waited is not None:
                found, generation = waited
                if found is not None:
                    self.stats.shared(kind)
                    ttl = min(float(settings.CACHE_L1_TTL), found.fresh_until - time.time())
                    return found.data, ttl, _covered(generation)
        return self._fill(kind, scope, variant, loader, epoch, generation, token)

    def _fill(
        self,
        kind: str,
        scope: str,
        variant: str,
        loader: Loader[Any],
        epoch: int,
        generation: str,
        token: str | None,
    ) -> tuple[Any, float, int]:
        try:
            data = self._load(kind, loader, self._fill_position(kind, generation))
        except BaseException:
            if token is not None:
                self._unlock(kind, scope, variant, token)
            raise
        # The fenced store and the lock's release in one round trip.
        stored = self._store(kind, scope, variant, epoch, generation, data, token=token)
        ttl = min(float(settings.CACHE_L1_TTL), kinds.ttl(kind)) if stored else 0.0
        return data, ttl, _covered(generation)

    def _await_fill(self, kind: str, scope: str, variant: str, epoch: int) -> tuple[Entry | None, str] | None:
        """Waits while another process fills the entry: (the entry or None, generation now), or
        None if L2 failed meanwhile."""
        deadline = time.monotonic() + float(settings.CACHE_STAMPEDE_WAIT)
        delay = 0.005
        generation = ""
        while time.monotonic() < deadline:
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
            try:
                entry, generation, locked = self.remote.read(kind, scope, variant)
            except L2_ERRORS as exc:
                self._l2_failed(kind, exc)
                return None
            if entry is not None and entry.epoch == epoch and entry.generation == generation:
                return entry, generation
            if not locked:  # the filler is done but stored nothing current: fill it ourselves
                break
        return None, generation

    def _load(self, kind: str, loader: Loader[T], position: int = UNKNOWN_POSITION) -> T:
        """Runs a loader; its reads need WAL ``position`` (unknown: the primary, see ``fills``)."""
        self.stats.load(kind)
        with loading(), filling(position):
            return loader()

    def _raise_epoch_position(self, kind: str, position: int) -> None:
        # Positions in Redis only grow; a message from a process that records none (an older
        # release) makes the kind's fills read the primary until the next recorded bump.
        current = self._epoch_positions.get(kind, 0)
        if position >= UNKNOWN_POSITION or current >= UNKNOWN_POSITION:
            self._epoch_positions[kind] = position
        else:
            self._epoch_positions[kind] = max(position, current)

    def _fill_position(self, kind: str, generation: str) -> int:
        """What a fill under ``generation`` must see: the scope's and the kind's last commits."""
        return max(
            generation_position(generation),
            self._epoch_positions.get(kind, UNKNOWN_POSITION) if self.feed.alive() else UNKNOWN_POSITION,
        )

    def _store(
        self,
        kind: str,
        scope: str,
        variant: str,
        epoch: int,
        generation: str,
        data: Any,
        *,
        token: str | None = None,
    ) -> bool:
        """The fenced store; with ``token``, the fill lock it holds is released in the same step."""
        if not self._l2_usable():
            return False
        ttl = kinds.ttl(kind)
        entry = Entry(epoch, generation, time.time() + ttl, data)
        ttl_ms = int((ttl + settings.CACHE_STALE_GRACE) * 1000)
        try:
            if token is not None:
                return self.remote.store_and_unlock(kind, scope, variant, entry, ttl_ms, token)
            return self.remote.store(kind, scope, variant, entry, ttl_ms)
        except L2_ERRORS as exc:
            self._l2_failed(kind, exc)
            return False

    def _lock(self, kind: str, scope: str, variant: str) -> str | None:
        if not self._l2_usable():
            return None
        token = uuid.uuid4().hex
        try:
            return token if self.remote.lock(kind, scope, variant, token, self._lock_ttl_ms()) else None
        except L2_ERRORS as exc:
            self._l2_failed(kind, exc)
            return None

    @staticmethod
    def _lock_ttl_ms() -> int:
        return int(max(settings.CACHE_STAMPEDE_WAIT * 3, 1.0) * 1000)

    def _unlock(self, kind: str, scope: str, variant: str, token: str) -> None:
        if not self._l2_usable():
            return
        try:
            self.remote.unlock(kind, scope, variant, token)
        except L2_ERRORS as exc:
            self._l2_failed(kind, exc)

    def _epoch(self, kind: str, alive: bool) -> int | None:
        """The kind's current epoch, or None when it cannot be known (L2 unusable, no feed)."""
        if alive:  # kept current by the feed: L1 stays usable through a passing L2 error
            return self._epochs.get(kind, 0)
        if not self._l2_usable():
            return None
        try:  # no feed to keep the local copy current: ask Redis
            return self.remote.epoch(kind)
        except L2_ERRORS as exc:
            self._l2_failed(kind, exc)
            return None

    def _l2_usable(self) -> bool:
        return time.monotonic() >= self._l2_down_until and self.remote.available()

    def _l2_failed(self, kind: str, exc: BaseException) -> None:
        self._l2_down_until = time.monotonic() + float(settings.CACHE_L2_RETRY_AFTER)
        self.stats.error(L2, kind)
        self._log(f"cache L2 unavailable ({type(exc).__name__}: {exc}); reading the database")

    def _log(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_log >= _LOG_EVERY:
            self._last_log = now
            logger.warning(message)

    # ===== prefetch ========================================================================
    def prefetch(self, wanted: list[prefetch.Want]) -> prefetch.Batch | None:
        """What a request will read, in one round trip (see ``prefetch``): tier entries not in
        L1, keys of aliases on the same Redis server, throttle counts. None when there is
        nothing to read, L2 is unusable or the read failed (every reader then reads for itself)."""
        if not self.remote.available() or not self._l2_usable():
            return None
        self.feed.ensure_started()
        alive = self.feed.alive()
        batch = prefetch.Batch()
        keys: list[str] = []
        plan: list[tuple[str, Any, int, tuple[int, int]]] = []
        counts: list[tuple[str, int, int]] = []
        count_keys: list[str] = []
        optional = [want for want in wanted if isinstance(want, prefetch.Raw) and want.optional]
        wanted = [want for want in wanted if not (isinstance(want, prefetch.Raw) and want.optional)]
        for want in [*wanted, None, *optional]:
            if want is None:  # what follows rides along with a round trip made anyway
                if not keys and not counts:
                    break
                continue
            if isinstance(want, prefetch.Entry):
                key: Key = (want.kind, want.scope, want.variant)
                if not alive or want.kind not in kinds.KINDS or not kinds.cacheable(want.scope, want.variant):
                    continue  # without the feed, the epoch is not known here
                epoch = self._epochs.get(want.kind, 0)
                if any(item[1] == key for item in plan) or self.l1.entry(key, epoch) is not None:
                    continue
                plan.append(("e", key, epoch, self.l1.mark(want.kind)))
                keys.append(self.remote.key(entry_key(want.kind, want.scope, want.variant)))
                keys.append(self.remote.key(generation_key(want.kind, want.scope)))
            elif isinstance(want, prefetch.Raw):
                if not self.remote.same_server(want.alias) or any(
                    item[1] == (want.alias, want.key) for item in plan
                ):
                    continue
                if want.alias not in batch.decoders:
                    batch.decoders[want.alias] = self.remote.decoder(want.alias)
                plan.append(("r", (want.alias, want.key), 0, (0, 0)))
                keys.append(self.remote.alias_key(want.alias, want.key))
            elif self.remote.same_server("default") and want.key not in count_keys:
                counts.append((self.remote.alias_key("default", want.key), want.amount, want.ttl))
                count_keys.append(want.key)
        if not keys and not counts:
            return None
        try:
            values, totals = self.remote.prefetch(keys, counts)
        except L2_ERRORS as exc:
            self._l2_failed("all", exc)
            return None
        position = 0
        for what, name, epoch, mark in plan:
            if what == "e":
                batch.entries[name] = (values[position], _text(values[position + 1]), epoch, mark)
                position += 2
            else:
                batch.raw[name] = values[position]
                position += 1
        batch.counts = dict(zip(count_keys, totals, strict=True))
        return batch

    # ===== a new process's warm-up (warm.py) ===============================================
    def keep_from_l2(self, keys: list[Key]) -> int:
        """Reads these entries from L2 in one pipeline and keeps in L1 those a read would keep
        (the kind's epoch and the scope's generation current, still fresh): how many. Nothing is
        loaded from the database; an invalidation arriving meanwhile wins, as for a read."""
        alive = self.feed.alive()
        if not keys or not alive or not self._l2_usable():
            return 0
        marks = {kind: self.l1.mark(kind) for kind in {key[0] for key in keys}}
        epochs = {kind: self._epoch(kind, alive) for kind in marks}
        try:
            read = self.remote.read_keys(keys)
        except L2_ERRORS as exc:
            self._l2_failed(keys[0][0], exc)
            return 0
        now, kept = time.time(), 0
        for key, (entry, generation) in zip(keys, read, strict=True):
            epoch = epochs[key[0]]
            if entry is None or epoch is None or entry.epoch != epoch or entry.generation != generation:
                continue
            ttl = min(float(settings.CACHE_L1_TTL), entry.fresh_until - now)
            held = self.l1.put(key, epoch, entry.data, ttl, mark=marks[key[0]], position=_covered(generation))
            if ttl > 0 and held is not None:
                kept += 1
        return kept

    # ===== writes ==========================================================================
    def invalidate(self, kind: str, scopes: Iterable[str], *, refresh: ManyLoader | None = None) -> None:
        """Every entry of these scopes goes, in every process; ``refresh`` (scopes -> data, read
        from the primary) then writes the new values through to L2."""
        kinds.check_kind(kind)
        wanted = [scope for scope in dict.fromkeys(scopes) if kinds.cacheable(scope, "")]
        if not wanted:
            return
        self.l1.invalidate_scopes(kind, wanted)
        self._ground(kind, wanted)
        self.stats.invalidation(kind, "scope", len(wanted))
        if not self.remote.available():
            return
        try:
            position = _hex(commit_position())
            generations = {scope: self.remote.bump(kind, scope, position) for scope in wanted}
            self.feed.publish({"t": "s", "k": kind, "s": wanted})
        except L2_ERRORS as exc:
            self._l2_failed(kind, exc)
            self._remember(kind, wanted)
            return
        self._l2_down_until = 0.0  # it answered
        if refresh is None:
            return
        epoch = self._epoch(kind, self.feed.alive())
        if epoch is None:
            return
        values = refresh(wanted)
        for scope in wanted:
            self._store(kind, scope, "", epoch, generations[scope], values.get(scope))

    def invalidate_kind(self, kind: str) -> None:
        """Every entry of the kind goes, in every process (its epoch moves on)."""
        kinds.check_kind(kind)
        self.l1.invalidate_kind(kind)
        self._ground(kind, None)
        self.stats.invalidation(kind, "kind")
        if not self.remote.available():
            return
        try:
            epoch, position = self.remote.bump_epoch(kind, _hex(commit_position()))
            self._raise_epoch_position(kind, position)
            self._epochs[kind] = epoch
            self.feed.publish({"t": "k", "k": kind, "e": epoch, "w": _hex(position)})
        except L2_ERRORS as exc:
            self._l2_failed(kind, exc)
            with self._pending_lock:
                self._pending_kinds.add(kind)

    def invalidate_all(self) -> None:
        for kind in kinds.KINDS:
            self.invalidate_kind(kind)

    def _remember(self, kind: str, scopes: list[str]) -> None:
        with self._pending_lock:
            pending = self._pending.setdefault(kind, set())
            pending.update(scopes)
            if len(pending) > _PENDING_LIMIT:
                del self._pending[kind]
                self._pending_kinds.add(kind)

    def _retry_pending(self) -> None:
        with self._pending_lock:
            scopes, self._pending = self._pending, {}
            whole, self._pending_kinds = self._pending_kinds, set()
        for kind in whole:
            self.invalidate_kind(kind)
        for kind, wanted in scopes.items():
            if kind not in whole:
                self.invalidate(kind, sorted(wanted))

    def _ground(self, kind: str, scopes: list[str] | None) -> None:
        """Loads in flight for these scopes (None: the whole kind) take no new waiters."""
        with self._flights_lock:
            for flight_key in list(self._flights):
                flight_kind, flight_scope, _ = flight_key[0]
                if flight_kind == kind and (scopes is None or flight_scope in scopes):
                    del self._flights[flight_key]

    # ===== the feed thread's callbacks =====================================================
    def _apply(self, message: dict[str, Any]) -> None:
        kind = message.get("k")
        if kind not in kinds.KINDS:
            return
        assert isinstance(kind, str)
        if message.get("t") == "s":
            scopes = [str(scope) for scope in message.get("s") or []]
            self.l1.invalidate_scopes(kind, scopes)
            self._ground(kind, scopes)
        elif message.get("t") == "k":
            # The position first: a fill that sees the new epoch must find a position covering it.
            self._raise_epoch_position(kind, generation_position("0:" + str(message.get("w") or "")))
            self._epochs[kind] = int(message.get("e") or 0)
            self.l1.invalidate_kind(kind)
            self._ground(kind, None)

    def _feed_connected(self) -> None:
        self._epochs = self.remote.epochs(kinds.KINDS)
        self._epoch_positions = self.remote.epoch_positions(kinds.KINDS)
        self.l1.clear()
        self._l2_down_until = 0.0
        CACHE_FEED_CONNECTED.set(1)
        self._retry_pending()

    def _feed_lost(self, error: BaseException | None) -> None:
        self.l1.clear()
        CACHE_FEED_CONNECTED.set(0)
        self.stats.error(FEED, "all")
        reason = f"{type(error).__name__}: {error}" if error is not None else "no reason given"
        self._log(f"cache invalidation feed lost ({reason}); L1 is off until it is back")

    def _idle(self) -> None:
        now = time.monotonic()
        if now < self._next_flush:
            return
        self._next_flush = now + float(settings.CACHE_STATS_FLUSH_INTERVAL)
        self.flush_stats()
        if self._pending or self._pending_kinds:
            self._retry_pending()

    def flush_stats(self) -> None:
        counts = self.stats.take()
        if not counts or not self.remote.available():
            return
        try:
            self.remote.stats_add(counts)
        except L2_ERRORS:
            self.stats.give_back(counts)

    # ===== lifecycle =======================================================================
    def clear_local(self) -> None:
        """Forgets this process's L1 and its view of L2's health (after a flush of L2)."""
        self.l1.clear()
        with self._flights_lock:
            self._flights.clear()
        self._l2_down_until = 0.0
        if self.feed.connected():
            try:
                self._epochs = self.remote.epochs(kinds.KINDS)
                self._epoch_positions = self.remote.epoch_positions(kinds.KINDS)
            except L2_ERRORS as exc:
                self._l2_failed("all", exc)

    def stop(self) -> None:
        self.feed.stop()
        self.flush_stats()


def commit_position() -> int:
    """The commit position an invalidation records (0 without replicas: nothing to wait for);
    the request's or task's own, read once after its last write, when there is one."""
    if not settings.REPLICA_DATABASES:
        return 0
    from videoplatform.db.lsn import commit_position as primary_position
    from videoplatform.db.routing import current_context

    context = current_context()
    return context.commit_lsn() if context is not None else primary_position()


def _covered(generation: str) -> int:
    """A WAL position that an entry valid under ``generation`` reflects every commit up to: the
    scope's last recorded invalidation (its fill read a replica that had replayed it, or the
    primary after it). 0 when unknown."""
    position = generation_position(generation)
    return 0 if position >= UNKNOWN_POSITION else position


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


def _hex(position: int) -> str:
    return f"{min(max(position, 0), UNKNOWN_POSITION):016x}"


# ===== the process's tiers =================================================================
_tiers: Tiers | None = None
_tiers_lock = threading.Lock()


def tiers() -> Tiers:
    """This process's tiers, created on first use (after a fork: anew, with their own thread)."""
    global _tiers
    current = _tiers
    if current is not None and current.pid == os.getpid():
        return current
    with _tiers_lock:
        if _tiers is None or _tiers.pid != os.getpid():
            _tiers = Tiers(settings.CACHE_TIERS_ALIAS)
        return _tiers


def reset() -> None:
    """Drops this process's tiers; the next use builds them from the current settings."""
    global _tiers
    with _tiers_lock:
        old, _tiers = _tiers, None
    if old is not None and old.pid == os.getpid():
        old.stop()


def _after_fork_in_child() -> None:
    global _tiers, _tiers_lock
    _tiers_lock = threading.Lock()
    _tiers = None  # the parent's feed thread does not exist here


os.register_at_fork(after_in_child=_after_fork_in_child)


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "CACHES" or setting.startswith("CACHE_"):
        reset()


setting_changed.connect(_on_setting_changed)


@atexit.register
def _flush_at_exit() -> None:
    current = _tiers
    if current is not None and current.pid == os.getpid():
        current.flush_stats()


# ===== what selectors and services call ====================================================
def fetch(kind: str, scope: str, loader: Loader[T], *, variant: str = "") -> T:
    return tiers().fetch(kind, scope, loader, variant=variant)


def fetch_many(kind: str, scopes: Iterable[str], loader: ManyLoader) -> dict[str, Any]:
    return tiers().fetch_many(kind, scopes, loader)


def invalidate_on_commit(kind: str, scopes: Iterable[str]) -> None:
    """After the current transaction commits (at once outside one): drop these scopes everywhere."""
    wanted = list(scopes)
    transaction.on_commit(lambda: tiers().invalidate(kind, wanted), robust=True)


def refresh_on_commit(kind: str, scopes: Iterable[str], loader: ManyLoader) -> None:
    """After the current transaction commits: drop these scopes everywhere and write the values
    ``loader(scopes)`` reads (from the primary) through to L2."""
    wanted = list(scopes)
    transaction.on_commit(lambda: tiers().invalidate(kind, wanted, refresh=loader), robust=True)
