"""Counting what the tiers do: Prometheus counters for /metrics, and running totals in Redis.

Every event goes to the Prometheus counters of this process (summed over gunicorn workers by
``/metrics``) and to a local tally that the feed thread adds to one Redis hash every few
seconds, so ``manage.py cache_stats`` can show the hit ratios of the whole deployment.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Final

from videoplatform.metrics import (
    CACHE_ERRORS,
    CACHE_INVALIDATIONS,
    CACHE_LOADS,
    CACHE_REQUESTS,
    CACHE_SHARED_LOADS,
    labelled,
)

L1: Final = "l1"
L2: Final = "l2"
FEED: Final = "feed"


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: Counter[str] = Counter()
        self.loads_total = 0  # database loads by this process since it started

    def _tally(self, field: str) -> None:
        with self._lock:
            self._pending[field] += 1

    def lookup(self, tier: str, kind: str, result: str) -> None:
        labelled(CACHE_REQUESTS, tier, kind, result).inc()
        self._tally(f"{tier}:{kind}:{result}")

    def load(self, kind: str) -> None:
        labelled(CACHE_LOADS, kind).inc()
        with self._lock:
            self._pending[f"db:{kind}:load"] += 1
            self.loads_total += 1

    def shared(self, kind: str) -> None:
        labelled(CACHE_SHARED_LOADS, kind).inc()
        self._tally(f"shared:{kind}:hit")

    def error(self, tier: str, kind: str) -> None:
        labelled(CACHE_ERRORS, tier, kind).inc()
        self._tally(f"{tier}:{kind}:error")

    def invalidation(self, kind: str, reach: str, count: int = 1) -> None:
        labelled(CACHE_INVALIDATIONS, kind, reach).inc(count)
        with self._lock:
            self._pending[f"invalidation:{kind}:{reach}"] += count

    def take(self) -> dict[str, int]:
        with self._lock:
            taken = dict(self._pending)
            self._pending.clear()
        return taken

    def give_back(self, counts: dict[str, int]) -> None:
        with self._lock:
            self._pending.update(counts)
