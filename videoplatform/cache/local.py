"""L1: a bounded, thread-safe LRU in each process.

Entries are dropped when their time is up, when the invalidation feed names their scope or
kind, and all at once when the feed is lost. ``mark(kind)`` counts the invalidations a kind has
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


class LocalTier:
    def __init__(self, max_entries: int) -> None:
        self.max_entries = max(0, max_entries)
        self._lock = threading.Lock()
        self._entries: OrderedDict[Key, _Entry] = OrderedDict()
        # (kind, scope) -> variants held, so one scope's entries go without a scan.
        self._variants: dict[tuple[str, str], set[str]] = {}
        self._marks: dict[str, int] = {}
        self._clears = 0

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
            if entry.expires <= time.monotonic() or entry.epoch != epoch:
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return entry

    def holds(self, key: Key, entry: _Entry) -> bool:
        """Whether ``entry`` (from ``entry()``) is still this key's, unexpired: no invalidation,
        replacement or eviction has happened to it since."""
        return entry.expires > time.monotonic() and self._entries.get(key) is entry

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
            entry = self._entries[key] = _Entry(time.monotonic() + ttl, epoch, data, position)
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
