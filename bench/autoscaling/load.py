"""Load profiles: offered API requests per second over time.

The day's shape is illustrative (a video platform's evening peak), drawn to pass through the
source's four levels: idle (3 pods), medium (10), high (30) and peak (50 at the 1,000 req/s
per-pod target). Replace it with a measured day when one exists.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import time

# The source's levels (2.1), as offered load at the 1,000 req/s per-pod target.
LEVELS = {"idle": 2_500.0, "medium": 10_000.0, "high": 30_000.0, "peak": 50_000.0}


@dataclass(frozen=True)
class LoadProfile:
    name: str
    description: str
    duration_seconds: int
    start_clock: time  # local wall-clock time at t = 0 (drives the schedule)
    follow_schedule: bool  # whether the scheduled min/max changes apply
    rate: Callable[[float], float]  # t (seconds) -> offered req/s


def _smooth(points: Sequence[tuple[float, float]]) -> Callable[[float], float]:
    """Cosine interpolation through (t, value) points: flat at each point, no overshoot."""

    def rate(t: float) -> float:
        if t <= points[0][0]:
            return points[0][1]
        for (t0, v0), (t1, v1) in itertools.pairwise(points):
            if t <= t1:
                weight = (1 - math.cos(math.pi * (t - t0) / (t1 - t0))) / 2
                return v0 + (v1 - v0) * weight
        return points[-1][1]

    return rate


def _steps(steps: Sequence[tuple[float, float]], ramp_seconds: float = 60.0) -> Callable[[float], float]:
    """Piecewise-constant levels starting at the given times, each reached by a short ramp."""
    points: list[tuple[float, float]] = [(0.0, steps[0][1])]
    for start, level in steps[1:]:
        points.append((start, points[-1][1]))
        points.append((start + ramp_seconds, level))
    return _smooth(points)


HOUR = 3600.0

# (hour of day, req/s): night trough, morning, lunch, evening peak.
_DAY = [
    (0, 14_000),
    (1, 9_000),
    (2, 5_000),
    (3, 2_500),
    (5, 2_000),
    (6, 3_000),
    (8, 9_000),
    (10, 10_000),
    (12, 18_000),
    (13, 16_000),
    (16, 20_000),
    (18, 30_000),
    (20, 48_000),
    (21, 50_000),
    (22, 38_000),
    (23, 24_000),
    (24, 14_000),
]

PROFILES: dict[str, LoadProfile] = {
    "day": LoadProfile(
        name="day",
        description="24 hours from midnight, evening peak of 50,000 req/s, with the night schedule",
        duration_seconds=24 * 3600,
        start_clock=time(0, 0),
        follow_schedule=True,
        rate=_smooth([(hour * HOUR, float(value)) for hour, value in _DAY]),
    ),
    "spike": LoadProfile(
        name="spike",
        description="daytime 5,000 req/s, a 15-minute spike to 30,000 req/s (1-minute ramp), back",
        duration_seconds=75 * 60,
        start_clock=time(14, 0),
        follow_schedule=True,
        rate=_steps([(0, 5_000.0), (10 * 60, 30_000.0), (25 * 60, 5_000.0)]),
    ),
    "step": LoadProfile(
        name="step",
        description="idle to beyond peak (60,000 req/s) and back: the 3 -> 50 and 50 -> 3 timings",
        duration_seconds=110 * 60,
        start_clock=time(14, 0),
        follow_schedule=False,
        rate=_steps([(0, 2_000.0), (10 * 60, 60_000.0), (50 * 60, 2_000.0)]),
    ),
    "levels": LoadProfile(
        name="levels",
        description="the source's idle, medium, high and peak levels, 20 minutes each, then idle",
        duration_seconds=150 * 60,
        start_clock=time(14, 0),
        follow_schedule=False,
        rate=_steps(
            [
                (0, LEVELS["idle"]),
                (20 * 60, LEVELS["medium"]),
                (40 * 60, LEVELS["high"]),
                (60 * 60, LEVELS["peak"]),
                (80 * 60, LEVELS["idle"]),
            ]
        ),
    ),
}
