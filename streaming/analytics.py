"""Per-video playback quality (QoE) for owners: the daily roll-up from Redis, and its reading.

Beacons are summed per video per UTC day in Redis (``qoe.record_video_events``). The beat job
``streaming-qoe-rollup`` (``video_qoe_rollup``) writes the totals of every day that changed since
its last run to ``VideoQoeDaily`` in one upsert per batch: a row holds the day's totals so far,
so a roll-up that runs twice, or after a crash, writes the same numbers again. The owner reads
the days and their sum at ``GET /api/videos/{id}/analytics`` (``video_analytics_get``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import redis
from django.db import transaction

from videos.models import Video

from . import qoe
from .models import VideoQoeDaily

logger = logging.getLogger(__name__)

ROLLUP_BATCH = 500
COUNTERS = ("watched_ms", "rebuffer_ms", "rebuffers", "errors", "fatal_errors")


def _histogram(totals: Mapping[str, int]) -> dict[int, int]:
    return {int(field[1:]): count for field, count in totals.items() if field.startswith("s") and count > 0}


def _row(video_id: str, day: date, totals: Mapping[str, int]) -> VideoQoeDaily:
    histogram = _histogram(totals)
    return VideoQoeDaily(
        video_id=video_id,
        day=day,
        views=totals.get("views", 0),
        startup_histogram={str(bound): count for bound, count in sorted(histogram.items())},
        startup_p50_ms=qoe.percentile_ms(histogram, 0.5),
        startup_p95_ms=qoe.percentile_ms(histogram, 0.95),
        **{name: totals.get(name, 0) for name in COUNTERS},
    )


def _write(rows: list[VideoQoeDaily]) -> None:
    existing = set(Video.objects.filter(pk__in={row.video_id for row in rows}).values_list("pk", flat=True))
    kept = [row for row in rows if row.video_id in existing]  # a deleted video's totals are dropped
    if not kept:
        return
    with transaction.atomic():
        VideoQoeDaily.objects.bulk_create(
            kept,
            update_conflicts=True,
            unique_fields=["video", "day"],
            update_fields=[
                "views",
                "startup_histogram",
                "startup_p50_ms",
                "startup_p95_ms",
                *COUNTERS,
                "updated_at",
            ],
        )


def video_qoe_rollup(*, batch_size: int = ROLLUP_BATCH) -> int:
    """Writes the Redis totals of every (day, video) changed since the last roll-up to
    ``VideoQoeDaily``; returns how many rows were written. Nothing to do without Redis."""
    client = qoe.qoe_client()
    if client is None:
        return 0
    written = 0
    try:
        for key in qoe.take_dirty(client):
            members = sorted(m.decode() if isinstance(m, bytes) else m for m in client.smembers(key))
            for start in range(0, len(members), batch_size):
                rows = []
                for member in members[start : start + batch_size]:
                    day, _, video_id = member.partition(":")
                    totals = qoe.read_totals(client, member)
                    if totals:  # expired: the roll-up that should have written it is long past
                        rows.append(_row(video_id, date.fromisoformat(day), totals))
                _write(rows)
                written += len(rows)
            client.delete(key)
    except redis.RedisError as exc:
        logger.warning("QoE roll-up stopped (Redis unavailable), the next one takes over: %s", exc)
    return written


# --- reading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class QoeSummary:
    views: int
    startup_p50_ms: int | None
    startup_p95_ms: int | None
    rebuffer_ratio: float | None
    rebuffers: int
    errors: int
    fatal_errors: int
    watched_seconds: float

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _summary(days: Iterable[VideoQoeDaily]) -> QoeSummary:
    histogram: dict[int, int] = {}
    sums = dict.fromkeys((*COUNTERS, "views"), 0)
    for row in days:
        for bound, count in row.startup_histogram.items():
            histogram[int(bound)] = histogram.get(int(bound), 0) + int(count)
        for name in sums:
            sums[name] += getattr(row, name)
    played = sums["watched_ms"] + sums["rebuffer_ms"]
    return QoeSummary(
        views=sums["views"],
        startup_p50_ms=qoe.percentile_ms(histogram, 0.5),
        startup_p95_ms=qoe.percentile_ms(histogram, 0.95),
        rebuffer_ratio=round(sums["rebuffer_ms"] / played, 6) if played else None,
        rebuffers=sums["rebuffers"],
        errors=sums["errors"],
        fatal_errors=sums["fatal_errors"],
        watched_seconds=round(sums["watched_ms"] / 1000, 3),
    )


def video_analytics_get(*, video_id: str, start: date, end: date) -> dict[str, Any]:
    """The video's QoE per day from ``start`` to ``end`` (inclusive, UTC days with data) and
    their sum (start-up percentiles over the merged buckets, not an average of the days')."""
    days = list(VideoQoeDaily.objects.filter(video_id=video_id, day__gte=start, day__lte=end).order_by("day"))
    return {
        "video_id": video_id,
        "from": start,
        "to": end,
        "totals": _summary(days).as_dict(),
        "days": [{"day": row.day, **_summary([row]).as_dict()} for row in days],
    }
