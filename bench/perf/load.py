"""The load: request files for wrk (the source's endpoint mix, or one endpoint), running wrk, and
reading back every request's endpoint, status and latency.

The mix (weights in ``MIX``) stands for a day of a video site's API traffic: people open videos
far more than anything else, browse the feed, press play, and rarely log in or upload. Videos
are picked with a Zipf-like popularity (rank r with probability ~1/r, newest first), so a hot
head of the catalogue is served from the caches and a long tail is not. 70 % of requests carry
a bearer token (subscribers, viewers who opted in to adult content, free users), 30 % are
anonymous.
"""

from __future__ import annotations

import bisect
import json
import math
import random
import resource
import statistics
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import seed
from .seed import SeedSpec

LUA = Path(__file__).resolve().parent / "lua" / "driver.lua"

# endpoint: (weight in the mix, expected status, the source's (8.1) P50/P95/P99 targets in ms)
ENDPOINTS: dict[str, tuple[float, int, tuple[float, float, float] | None]] = {
    "detail": (40.0, 200, (80, 150, 250)),  # GET /api/videos/{id}
    "feed": (25.0, 200, None),  # GET /api/videos?page=N (20 per page); no target in 8.1
    "stream": (20.0, 200, (100, 200, 300)),  # GET /api/videos/{id}/stream
    "plans": (14.0, 200, (50, 100, 200)),  # GET /api/subscriptions/plans
    "login": (0.5, 200, (150, 300, 500)),  # POST /api/auth/login
    "create": (0.5, 201, (200, 400, 600)),  # POST /api/videos/create
}
PATHS = {
    "detail": "GET /api/videos/{id}",
    "feed": "GET /api/videos (20 per page)",
    "stream": "GET /api/videos/{id}/stream",
    "plans": "GET /api/subscriptions/plans",
    "login": "POST /api/auth/login",
    "create": "POST /api/videos/create",
}
AUTHENTICATED_SHARE = 0.7
BANDWIDTHS = [None, None, 800_000, 1_500_000, 3_000_000, 8_000_000]


def zipf_index(rng: random.Random, size: int) -> int:
    """Rank r (0-based) with probability about proportional to 1/(r+1)."""
    return min(size - 1, int(math.exp(rng.random() * math.log(size + 1))) - 1)


@dataclass
class Catalogue:
    """What the load may ask for, derived from the seed's fixed plan (no database round trip)."""

    spec: SeedSpec
    visible: list[str] = field(default_factory=list)  # public or unlisted, not adult
    streamable: list[tuple[str, bool]] = field(default_factory=list)  # (id, premium) with a ready ladder

    @classmethod
    def from_spec(cls, spec: SeedSpec) -> Catalogue:
        videos = seed.plan_videos(spec, datetime.now(UTC))
        catalogue = cls(spec)
        catalogue.visible = [seed.video_id(v.n) for v in videos if v.privacy != "private" and not v.is_adult]
        catalogue.streamable = [(seed.video_id(v.n), v.is_premium) for v in seed.media_videos(spec, videos)]
        return catalogue


def _line(name: str, method: str, path: str, token: str | None = None, body: Any = None) -> str:
    payload = json.dumps(body, separators=(",", ":")) if body is not None else "-"
    return "\t".join([name, method, path, token or "-", payload])


class Requests:
    """Builds request lines; every choice comes from one seeded RNG."""

    def __init__(self, catalogue: Catalogue, seed_value: int = 1) -> None:
        self.catalogue = catalogue
        self.rng = random.Random(seed_value)
        self.created = 0

    def viewer(self) -> int | None:
        """A token user's number, or None for an anonymous request."""
        if self.rng.random() < AUTHENTICATED_SHARE:
            return self.rng.randrange(self.catalogue.spec.token_users)
        return None

    def one(self, name: str, viewer: int | None = None, hot: int | None = None) -> str:
        rng, spec = self.rng, self.catalogue.spec
        token = seed.token(viewer) if viewer is not None else None
        if name == "detail":
            pool = self.catalogue.visible[:hot] if hot else self.catalogue.visible
            return _line(name, "GET", f"/api/videos/{pool[zipf_index(rng, len(pool))]}", token)
        if name == "feed":
            roll = rng.random()
            page = 1 if roll < 0.6 else 2 if roll < 0.8 else 3 if roll < 0.9 else rng.randrange(4, 11)
            if hot:
                page = rng.randrange(1, hot + 1)
            return _line(name, "GET", "/api/videos" + (f"?page={page}" if page > 1 else ""), token)
        if name == "stream":
            subscriber = viewer is not None and seed.is_subscriber(spec, viewer)
            pool = [vid for vid, premium in self.catalogue.streamable if subscriber or not premium]
            bandwidth = rng.choice(BANDWIDTHS)
            query = f"?bandwidth={bandwidth}" if bandwidth else ""
            return _line(name, "GET", f"/api/videos/{pool[zipf_index(rng, len(pool))]}/stream{query}", token)
        if name == "plans":
            return _line(name, "GET", "/api/subscriptions/plans", token)
        if name == "login":
            user = rng.randrange(spec.users)
            body = {"username": seed.username(user), "password": seed.PASSWORD}
            return _line(name, "POST", "/api/auth/login", None, body)
        if name == "create":
            self.created += 1
            words = rng.sample(seed.WORDS, 5)
            body = {
                "title": " ".join(words[:3]).capitalize(),
                "description": "Uploaded during a load test. " + " ".join(words),
                "tags": words[3:],
                "privacy": rng.choice(["public", "public", "public", "unlisted", "private"]),
                "file_name": "clip.mp4",
                "content_type": "video/mp4",
            }
            author = viewer if viewer is not None else rng.randrange(spec.token_users)
            return _line(name, "POST", "/api/videos/create", seed.token(author), body)
        raise ValueError(name)

    def mix(self, count: int) -> list[str]:
        names = list(ENDPOINTS)
        weights = [ENDPOINTS[name][0] for name in names]
        lines = []
        for _ in range(count):
            name = self.rng.choices(names, weights)[0]
            lines.append(self.one(name, viewer=None if name == "login" else self.viewer()))
        return lines

    def single(
        self, name: str, count: int, *, hot: int | None = None, authenticated: bool = False
    ) -> list[str]:
        spec = self.catalogue.spec
        return [
            self.one(name, viewer=self.rng.randrange(spec.token_users) if authenticated else None, hot=hot)
            for _ in range(count)
        ]


@dataclass
class EndpointStats:
    name: str
    count: int
    errors: int
    statuses: dict[int, int]
    rps: float
    p50: float
    p95: float
    p99: float
    mean: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.name,
            "requests": self.count,
            "errors": self.errors,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "rps": round(self.rps, 1),
            "p50_ms": round(self.p50, 2),
            "p95_ms": round(self.p95, 2),
            "p99_ms": round(self.p99, 2),
            "mean_ms": round(self.mean, 2),
        }


@dataclass
class LoadResult:
    label: str
    seconds: float
    requests: int
    socket_errors: dict[str, int]
    endpoints: dict[str, EndpointStats]
    wrk_cpu: float  # CPU seconds the load generator used
    server_cpu: float  # CPU seconds of the gunicorn master and workers
    machine_busy: float  # CPU seconds the whole machine was busy (every process, every core)
    connections: int
    rate: float
    # When each answer completed, in seconds since wrk was started (sorted).
    done_at: list[float] = field(default_factory=list, repr=False)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def rps_between(self, start: float, end: float) -> float:
        """Answers per second completed between ``start`` and ``end`` seconds into the run."""
        end = min(end, self.seconds)
        if end <= start:
            return 0.0
        count = bisect.bisect_left(self.done_at, end) - bisect.bisect_left(self.done_at, start)
        return count / (end - start)

    def curve(self, width: float) -> list[tuple[float, float]]:
        """(bucket start in seconds, req/s) for consecutive buckets of ``width`` seconds; a last
        partial bucket shorter than half a width is left out."""
        rows, start = [], 0.0
        while start + width / 2 <= self.seconds:
            rows.append((start, self.rps_between(start, start + width)))
            start += width
        return rows

    @property
    def errors(self) -> int:
        return sum(stats.errors for stats in self.endpoints.values()) + sum(self.socket_errors.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "seconds": round(self.seconds, 2),
            "requests": self.requests,
            "rps": round(self.rps, 1),
            "errors": self.errors,
            "socket_errors": self.socket_errors,
            "connections": self.connections,
            "paced_at": self.rate or None,
            "cpu": {
                "load_generator_cores": round(self.wrk_cpu / self.seconds, 3) if self.seconds else None,
                "server_cores": round(self.server_cpu / self.seconds, 3) if self.seconds else None,
                "machine_busy_cores": round(self.machine_busy / self.seconds, 3) if self.seconds else None,
            },
            "endpoints": {name: stats.as_dict() for name, stats in self.endpoints.items()},
        }


def percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, math.ceil(q / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def parse(
    path: Path, seconds_hint: float, started_us: float = 0.0
) -> tuple[float, dict[str, int], dict[str, list[tuple[int, float]]], list[float]]:
    """(seconds, socket errors, per endpoint [(status, latency ms)], completion times in seconds
    after ``started_us``, sorted)."""
    seconds, socket_errors = seconds_hint, {}
    per: dict[str, list[tuple[int, float]]] = defaultdict(list)
    done: list[float] = []
    for line in path.read_text().splitlines():
        if line.startswith("#summary"):
            values = dict(item.split("=") for item in line.split()[1:])
            seconds = int(values["duration_us"]) / 1e6
            socket_errors = {
                k: int(values[k]) for k in ("connect", "read", "write", "timeout") if int(values[k])
            }
            continue
        name, status, latency, *finished = line.split()
        per[name].append((int(status), int(latency) / 1000.0))
        if finished and started_us:
            done.append((int(finished[0]) - started_us) / 1e6)
    done.sort()
    return seconds, socket_errors, per, done


def run_wrk(
    wrk: str,
    url: str,
    lines: Sequence[str],
    *,
    label: str,
    seconds: float,
    connections: int,
    workdir: Path,
    rate: float = 0.0,
    server_cpu: Any = None,
    honour_retry_after: bool = False,
) -> LoadResult:
    """Replays ``lines`` for ``seconds`` over ``connections`` keep-alive connections (one wrk
    thread each), paced at ``rate`` req/s in total when given. With ``honour_retry_after`` (closed
    loop only) a connection answered 503 with ``Retry-After`` waits that long, as clients do."""
    workdir.mkdir(parents=True, exist_ok=True)
    requests_file = workdir / f"{label}.requests.tsv"
    out_file = workdir / f"{label}.out.txt"
    requests_file.write_text("\n".join(lines) + "\n")
    env = {
        "PERF_REQUESTS": str(requests_file),
        "PERF_OUT": str(out_file),
        "PERF_THREADS": str(connections),
        "PERF_RATE": str(rate),
        "PERF_RETRY_AFTER": "1" if honour_retry_after else "0",
        "PATH": "/usr/bin:/bin",
    }
    command = [
        wrk,
        f"-t{connections}",
        f"-c{connections}",
        f"-d{seconds:.0f}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        url,
    ]
    from .stack import machine_cpu

    cpu_before = server_cpu() if server_cpu else 0.0
    busy_before, _ = machine_cpu()
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started_us = time.monotonic() * 1e6  # the Lua driver's clock is CLOCK_MONOTONIC too
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 120)
    usage_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy_after, _ = machine_cpu()
    cpu_after = server_cpu() if server_cpu else 0.0
    if result.returncode != 0 or not out_file.exists():
        raise SystemExit(
            f"wrk failed ({result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        )
    wrk_cpu = (usage_after.ru_utime - usage_before.ru_utime) + (usage_after.ru_stime - usage_before.ru_stime)
    elapsed, socket_errors, per, done_at = parse(out_file, seconds, started_us)
    endpoints = {}
    for name in sorted(per, key=lambda n: list(ENDPOINTS).index(n) if n in ENDPOINTS else 99):
        samples = per[name]
        expected = ENDPOINTS.get(name, (0, 200, None))[1]
        latencies = sorted(latency for _, latency in samples)
        statuses = Counter(status for status, _ in samples)
        endpoints[name] = EndpointStats(
            name=name,
            count=len(samples),
            errors=sum(count for status, count in statuses.items() if status != expected),
            statuses=dict(statuses),
            rps=len(samples) / elapsed,
            p50=percentile(latencies, 50),
            p95=percentile(latencies, 95),
            p99=percentile(latencies, 99),
            mean=statistics.fmean(latencies) if latencies else float("nan"),
        )
    out_file.unlink(missing_ok=True)
    return LoadResult(
        label=label,
        seconds=elapsed,
        requests=sum(stats.count for stats in endpoints.values()),
        socket_errors=socket_errors,
        endpoints=endpoints,
        wrk_cpu=wrk_cpu,
        server_cpu=cpu_after - cpu_before,
        machine_busy=busy_after - busy_before,
        connections=connections,
        rate=rate,
        done_at=done_at,
    )


def pause(seconds: float) -> None:
    time.sleep(seconds)
