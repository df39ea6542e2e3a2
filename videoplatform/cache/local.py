"""L1: a bounded, thread-safe LRU in each process.

Entries are dropped when the invalidation feed names their scope or kind, all at once when the
feed is lost, and least recently used first beyond the bound (a read is a use, and so is an
answer the response cache serves from an entry: ``holds``); an entry whose time is up is no
longer read, and stays in its slot until it is refilled or pushed out. A refill of a key whose
held entry has the very same data (the same epoch, equal values: an expiry refilled from L2 or
the database with nothing changed) continues that entry's *lineage*: whatever was built from the
old entry (the response cache's answers, ``holds``) stays current. An invalidation, an eviction
or different data starts a new lineage. ``mark(kind)`` counts the invalidations a kind has
seen in this process: a reader notes it before going to L2 or the database and stores its result
only if it has not moved, so a read that started before an invalidation never lands here after it.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict
from typing import Any, Final, NamedTuple

MISSING: Final = object()

Key = tuple[str, str, str]  # kind, scope, variant


class _Entry(NamedTuple):
    expires: float  # time.monotonic()
    epoch: int
    data: Any
    # A WAL position the data reflects every commit up to (the scope's last invalidation when
    # it was filled or validated): a client pinned past it does not take it (core.Tiers).
    position: int = 0
    # Entries of one key that held equal data one after the other, with no invalidation or
    # eviction in between, share it (``holds``).
    lineage: int = 0


class LocalTier:
    def __init__(self, max_entries: int) -> None:
        self.max_entries = max(0, max_entries)
        self._lock = threading.Lock()
        self._entries: OrderedDict[Key, _Entry] = OrderedDict()
        # (kind, scope) -> variants held, so one scope's entries go without a scan.
        self._variants: dict[tuple[str, str], set[str]] = {}
        self._marks: dict[str, int] = {}
        self._clears = 0
        self._lineages = itertools.count(1)

    def __len__(self) -> int:
        return len(self._entries)

    def mark(self, kind: str) -> tuple[int, int]:
        return self._clears, self._marks.get(kind, 0)

    def get(self, key: Key, epoch: int) -> Any:
        entry = self.entry(key, epoch)
        return MISSING if entry is None else entry.data

    def entry(self, key: Key, epoch: int) -> _Entry | None:
        """The current entry for ``key`` (its ``data`` is the value), or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.epoch != epoch:
                self._drop(key)
                return None
            if entry.expires <= time.monotonic():
                return None  # kept in its slot: a refill with equal data continues its lineage
            self._entries.move_to_end(key)
            return entry

    def holds(self, key: Key, entry: _Entry) -> bool:
        """Whether what ``entry`` (from ``entry()`` or ``put()``) holds is still this key's,
        unexpired: no invalidation, eviction or change of its data has happened since (a refill
        with equal data, in its lineage, keeps it). A yes is a use of the entry, as a read is:
        it becomes the most recently used (an answer served from it keeps it from being pushed
        out by entries read less often)."""
        current = self._entries.get(key)
        if current is None or current.lineage != entry.lineage or current.expires <= time.monotonic():
            return False
        with self._lock:
            if self._entries.get(key) is current:
                self._entries.move_to_end(key)
        return True

    def put(
        self, key: Key, epoch: int, data: Any, ttl: float, *, mark: tuple[int, int], position: int = 0
    ) -> _Entry | None:
        """Stores unless an invalidation of the kind arrived since ``mark`` was read: the new
        entry, or None."""
        if self.max_entries == 0 or ttl <= 0:
            return None
        with self._lock:
            if (self._clears, self._marks.get(key[0], 0)) != mark:
                return None
            held = self._entries.get(key)
            if held is not None and held.epoch == epoch and _same(held.data, data):
                lineage = held.lineage
            else:
                lineage = next(self._lineages)
            entry = self._entries[key] = _Entry(time.monotonic() + ttl, epoch, data, position, lineage)
            self._entries.move_to_end(key)
            self._variants.setdefault((key[0], key[1]), set()).add(key[2])
            while len(self._entries) > self.max_entries:
                oldest = next(iter(self._entries))
                self._drop(oldest)
            return entry

    def invalidate_scopes(self, kind: str, scopes: list[str]) -> None:
        with self._lock:
            self._marks[kind] = self._marks.get(kind, 0) + 1
            for scope in scopes:
                for variant in self._variants.pop((kind, scope), ()):
                    self._entries.pop((kind, scope, variant), None)

    def invalidate_kind(self, kind: str) -> None:
        with self._lock:
            self._marks[kind] = self._marks.get(kind, 0) + 1
            for key in [key for key in self._entries if key[0] == kind]:
                self._drop(key)

    def clear(self) -> None:
        with self._lock:
            self._clears += 1
            self._entries.clear()
            self._variants.clear()

    def hottest(self, count: int) -> list[Key]:
        """Up to ``count`` keys held, the most recently used first."""
        with self._lock:
            return list(itertools.islice(reversed(self._entries), max(0, count)))

    def counts(self) -> dict[str, int]:
        """Entries held per kind (for operators)."""
        with self._lock:
            counts: dict[str, int] = {}
            for kind, _, _ in self._entries:
                counts[kind] = counts.get(kind, 0) + 1
            return counts

    def _drop(self, key: Key) -> None:
        self._entries.pop(key, None)
        variants = self._variants.get((key[0], key[1]))
        if variants is not None:
            variants.discard(key[2])
            if not variants:
                del self._variants[(key[0], key[1])]


def _same(held: Any, data: Any) -> bool:
    """Whether two entries' data are equal (plain data: snapshots, lists, None); anything that
    cannot tell counts as different."""
    if held is data:
        return True
    try:
        return bool(held == data)
    except Exception:  # noqa: BLE001 - a value whose comparison fails: a new lineage
        return False
