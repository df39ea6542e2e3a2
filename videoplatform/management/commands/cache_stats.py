"""Hit ratios of the cache tiers, per tier and kind, summed over every process.

    manage.py cache_stats [--json] [--keys] [--reset]

Each process adds its counts to Redis every ``CACHE_STATS_FLUSH_INTERVAL`` seconds, so the
totals cover the whole deployment since the last ``--reset`` (and lag by that interval).
``/metrics`` has the same counts per pod, for Prometheus.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from videoplatform.cache import KINDS
from videoplatform.cache.ops import KindStats, connected_tiers, kind_keys, kind_stats


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


class Command(BaseCommand):
    help = "Hit ratio per tier (L1, L2) and kind, over every process; --reset starts the count again."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="One JSON document instead of a table.")
        parser.add_argument("--keys", action="store_true", help="Also count L2 entries per kind (a SCAN).")
        parser.add_argument("--reset", action="store_true", help="Zero the totals after printing them.")

    def handle(self, *args: Any, **options: Any) -> None:
        current = connected_tiers()
        current.flush_stats()
        totals = current.remote.stats_read()
        rows = kind_stats(totals)
        keys = {kind: len(kind_keys(current, kind)) for kind in KINDS} if options["keys"] else None
        feed_errors = totals.get("feed:all:error", 0)
        if options["json"]:
            self.stdout.write(json.dumps(self._document(rows, keys, feed_errors), indent=2))
        else:
            self._table(rows, keys, feed_errors)
        if options["reset"]:
            current.remote.stats_reset()
            self.stdout.write("Totals reset.")

    def _document(
        self, rows: list[KindStats], keys: dict[str, int] | None, feed_errors: int
    ) -> dict[str, Any]:
        kinds: dict[str, Any] = {}
        for row in rows:
            kinds[row.kind] = {
                "l1": {"hits": row.l1_hits, "misses": row.l1_misses, "hit_ratio": row.l1_ratio},
                "l2": {
                    "hits": row.l2_hits,
                    "stale": row.l2_stale,
                    "misses": row.l2_misses,
                    "errors": row.errors,
                    "hit_ratio": row.l2_ratio,
                },
                "database_loads": row.loads,
                "shared_loads": row.shared,
                "hit_ratio": row.overall_ratio,
            }
            if keys is not None:
                kinds[row.kind]["l2"]["entries"] = keys[row.kind]
        return {"kinds": kinds, "feed_errors": feed_errors}

    def _table(self, rows: list[KindStats], keys: dict[str, int] | None, feed_errors: int) -> None:
        header = ["kind", "L1 hit", "L1 miss", "L1 ratio", "L2 hit", "L2 stale", "L2 miss", "L2 ratio"]
        header += ["db loads", "shared", "errors", "overall"] + (["L2 keys"] if keys is not None else [])
        lines = [header]
        for row in rows:
            line = [
                row.kind,
                str(row.l1_hits),
                str(row.l1_misses),
                _ratio(row.l1_ratio),
                str(row.l2_hits),
                str(row.l2_stale),
                str(row.l2_misses),
                _ratio(row.l2_ratio),
                str(row.loads),
                str(row.shared),
                str(row.errors),
                _ratio(row.overall_ratio),
            ]
            if keys is not None:
                line.append(str(keys[row.kind]))
            lines.append(line)
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        for line in lines:
            self.stdout.write("  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)))
        self.stdout.write(
            "L1 ratio: L1 hits / L1 lookups. L2 ratio: (hits + stale) / L2 lookups. Overall: reads "
            "answered without a database load of their own."
        )
        if feed_errors:
            self.stdout.write(f"Invalidation feed losses: {feed_errors} (each flushed that process's L1).")
