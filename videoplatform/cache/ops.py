"""What the operator commands do with the tiers: count, purge, report, show progress."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TextIO

from django.core.management.base import CommandError

from . import kinds
from .core import Tiers, tiers
from .remote import L2_ERRORS, entry_key


def connected_tiers() -> Tiers:
    """This process's tiers, or CommandError when there is no Redis to act on."""
    current = tiers()
    if not current.remote.available():
        raise CommandError(
            "The cache tiers pass through without Redis: set REDIS_URL (or REDIS_CLUSTER_URL) first."
        )
    try:
        current.remote.client().ping()
    except L2_ERRORS as exc:
        raise CommandError(f"Redis is unreachable: {type(exc).__name__}: {exc}") from exc
    return current


def scope_keys(current: Tiers, kind: str, scope: str) -> list[str]:
    """L2 entry keys of one scope (every variant)."""
    return current.remote.scan(entry_key(kind, scope, "") + "*")


def kind_keys(current: Tiers, kind: str) -> list[str]:
    """L2 entry keys of a whole kind (of every epoch: old ones wait for their TTL)."""
    return current.remote.scan(f"c:{{{kind}:*")


def invalidate_scopes(current: Tiers, kind: str, scopes: list[str]) -> int:
    """Invalidates scopes everywhere; the number of L2 entries that went."""
    found = sum(len(scope_keys(current, kind, scope)) for scope in scopes)
    current.invalidate(kind, scopes)
    leftovers = [key for scope in scopes for key in scope_keys(current, kind, scope)]
    current.remote.delete(leftovers)  # other variants of the scope (feed pages) free their memory now
    return found


def invalidate_kind(current: Tiers, kind: str) -> int:
    """Invalidates a whole kind everywhere (new epoch) and deletes its L2 entries; how many went."""
    current.invalidate_kind(kind)
    return current.remote.delete(kind_keys(current, kind))


@dataclass(frozen=True)
class KindStats:
    kind: str
    l1_hits: int
    l1_misses: int
    l2_hits: int
    l2_stale: int
    l2_misses: int
    loads: int
    shared: int
    errors: int

    @property
    def l1_ratio(self) -> float | None:
        total = self.l1_hits + self.l1_misses
        return self.l1_hits / total if total else None

    @property
    def l2_ratio(self) -> float | None:
        total = self.l2_hits + self.l2_stale + self.l2_misses
        return (self.l2_hits + self.l2_stale) / total if total else None

    @property
    def overall_ratio(self) -> float | None:
        """Share of reads answered without a database load of their own."""
        served = self.l1_hits + self.l2_hits + self.l2_stale + self.shared
        total = served + self.loads
        return served / total if total else None


def kind_stats(totals: dict[str, int]) -> list[KindStats]:
    def get(field: str) -> int:
        return totals.get(field, 0)

    return [
        KindStats(
            kind=kind,
            l1_hits=get(f"l1:{kind}:hit"),
            l1_misses=get(f"l1:{kind}:miss"),
            l2_hits=get(f"l2:{kind}:hit"),
            l2_stale=get(f"l2:{kind}:stale"),
            l2_misses=get(f"l2:{kind}:miss"),
            loads=get(f"db:{kind}:load"),
            shared=get(f"shared:{kind}:hit"),
            errors=get(f"l2:{kind}:error"),
        )
        for kind in kinds.KINDS
    ]


class Progress:
    """A one-line progress bar on a terminal; one line per tenth of the way elsewhere (logs)."""

    def __init__(self, label: str, total: int, stream: TextIO | Any = None, width: int = 30) -> None:
        self.label = label
        self.total = max(total, 0)
        self.stream = stream or sys.stdout
        self.width = width
        self.done = 0
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_tenth = -1

    def advance(self, steps: int = 1) -> None:
        self.done = min(self.total, self.done + steps)
        self._draw()

    def track(self, items: Iterable[object]) -> Iterable[object]:
        for item in items:
            yield item
            self.advance()

    def _draw(self) -> None:
        fraction = self.done / self.total if self.total else 1.0
        filled = int(fraction * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        line = f"{self.label:<14} [{bar}] {self.done}/{self.total}"
        if self._tty:
            self.stream.write("\r" + line + ("\n" if self.done >= self.total else ""))
        else:
            tenth = int(fraction * 10)
            if tenth == self._last_tenth:
                return
            self._last_tenth = tenth
            self.stream.write(line + "\n")
        self.stream.flush()
