"""GET /api/videos/{id} against real gunicorn servers: no cache, a cold cache, L2 hits, L1 hits.

    DATABASE_URL=postgres://…/scratch .venv/bin/python bench/cache.py \\
        [--requests 1000] [--concurrency 8] [--hot 100] [--rounds 3]

Migrates the database it is given, creates its own user and videos, deletes them at the end,
and starts its own redis-server (nothing else can flush it mid-run). Three servers (one worker,
four threads each) run on that database and Redis:

- *no cache*: ``CACHE_TIERS_ENABLED=false``, every request reads PostgreSQL;
- *cold*: the tiers on, every request for a video never read before (a miss: the row is read
  and stored in L2);
- *L2 hit*: ``CACHE_L1_MAX_ENTRIES=0`` (no L1), videos already in L2;
- *L1 hit*: the tiers on, videos already in that process's L1.

Prints throughput and latency per phase, SQL statements per request (from ``/metrics``), and
ratios against the cold phase. Figures for docs/caching.md; never a CI gate.
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.base")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from accounts.models import User  # noqa: E402
from tests.support.processes import RedisServer, base_env, gunicorn, http_get  # noqa: E402
from videos.models import Video  # noqa: E402

VIEW = 'videos/<str:video_id>"'  # the end of the detail view's route label


@dataclass(frozen=True)
class Phase:
    name: str
    seconds: float
    latencies_ms: list[float]
    queries_per_request: float | None
    cache_errors: float

    @property
    def throughput(self) -> float:
        return len(self.latencies_ms) / self.seconds

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def server_env(redis_url: str, **extra: str) -> dict[str, str]:
    return base_env(
        DJANGO_SETTINGS_MODULE="settings.test",
        DATABASE_URL=os.environ["DATABASE_URL"],
        REDIS_URL=redis_url,
        GUNICORN_THREADS="4",
        GUNICORN_ACCESS_LOG="/dev/null",
        GUNICORN_LOG_LEVEL="warning",
        **extra,
    )


@contextmanager
def bench_data(count: int) -> Iterator[list[str]]:
    owner = User.objects.create_user(
        username=f"bench-cache-{os.getpid()}", email=f"bench{os.getpid()}@example.com"
    )
    try:
        videos = Video.objects.bulk_create(
            Video(owner=owner, title=f"Bench video {n}", description="d" * 400, tags=["bench"], view_count=n)
            for n in range(count)
        )
        yield [video.pk for video in videos]
    finally:
        owner.delete()  # the videos go with it


def server_counts(base_url: str) -> tuple[float, float, float]:
    """(SQL statements, requests) so far for the detail view, and cache errors, from /metrics."""
    text = http_get(f"{base_url}/metrics")[1].decode()
    total = count = errors = 0.0
    for line in text.splitlines():
        if VIEW in line and line.startswith("http_request_db_queries_sum{"):
            total += float(line.rsplit(" ", 1)[1])
        elif VIEW in line and line.startswith("http_request_db_queries_count{"):
            count += float(line.rsplit(" ", 1)[1])
        elif line.startswith("cache_errors_total{"):
            errors += float(line.rsplit(" ", 1)[1])
    return total, count, errors


def run_phase(name: str, base_url: str, ids: list[str], requests: int, concurrency: int) -> Phase:
    parts = urlsplit(base_url)
    latencies: list[float] = []
    lock = threading.Lock()
    cursor = iter(range(requests))

    def client() -> None:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        mine: list[float] = []
        while True:
            with lock:
                index = next(cursor, None)
            if index is None:
                break
            started = time.perf_counter()
            connection.request("GET", f"/api/videos/{ids[index % len(ids)]}")
            response = connection.getresponse()
            response.read()
            mine.append((time.perf_counter() - started) * 1000)
            if response.status != 200:
                raise RuntimeError(f"{name}: HTTP {response.status}")
        connection.close()
        with lock:
            latencies.extend(mine)

    before = server_counts(base_url)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for future in [pool.submit(client) for _ in range(concurrency)]:
            future.result()
    seconds = time.perf_counter() - started
    after = server_counts(base_url)
    served = after[1] - before[1]
    queries = (after[0] - before[0]) / served if served else None
    return Phase(name, seconds, latencies, queries, after[2] - before[2])


def warm(base_url: str, ids: list[str], rounds: int = 2) -> None:
    for _ in range(rounds):
        for video_id in ids:
            status, _ = http_get(f"{base_url}/api/videos/{video_id}")
            if status != 200:
                raise RuntimeError(f"warming {video_id}: HTTP {status}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests per phase (default 1000)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--hot", type=int, default=100, help="videos the hit phases cycle over (default 100)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of the four phases, interleaved; the median is shown"
    )
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("Set DATABASE_URL (PostgreSQL, a scratch database).")
    requests, concurrency = max(args.requests, 10), max(args.concurrency, 1)
    hot, rounds = max(1, min(args.hot, requests)), max(1, args.rounds)

    call_command("migrate", verbosity=0)
    with bench_data(requests * (rounds + 1) + hot) as ids, ExitStack() as servers:
        redis_server = RedisServer()
        redis_server.start()
        servers.callback(redis_server.stop)
        redis_url = redis_server.url
        no_cache = servers.enter_context(gunicorn(server_env(redis_url, CACHE_TIERS_ENABLED="false")))
        tiers = servers.enter_context(gunicorn(server_env(redis_url)))
        l2_only = servers.enter_context(gunicorn(server_env(redis_url, CACHE_L1_MAX_ENTRIES="0")))
        baseline_ids, hot_ids = ids[:requests], ids[requests : requests + hot]
        warm(tiers, hot_ids)  # into L2, and into this server's L1
        # Interleaved rounds, so that a burst of other load on the machine hits every phase alike.
        runs: dict[str, list[Phase]] = {}
        for round_index in range(rounds):
            start = requests + hot + round_index * requests
            cold_ids = ids[start : start + requests]  # never read before: every request misses
            for phase in (
                run_phase("no cache", no_cache, baseline_ids, requests, concurrency),
                run_phase("cold (miss)", tiers, cold_ids, requests, concurrency),
                run_phase("L2 hit", l2_only, hot_ids, requests, concurrency),
                run_phase("L1 hit", tiers, hot_ids, requests, concurrency),
            ):
                runs.setdefault(phase.name, []).append(phase)
    phases = [sorted(runs[name], key=lambda p: p.throughput)[len(runs[name]) // 2] for name in runs]

    cold = phases[1]
    print(
        f"GET /api/videos/{{id}}: {requests} requests per phase, median of {rounds} interleaved rounds, "
        f"{concurrency} concurrent clients, "
        f"gunicorn 1 worker x 4 threads per server, {os.cpu_count()} CPU(s); "
        "PostgreSQL and a standalone Redis on this machine"
    )
    header = (
        f"{'phase':<12} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'SQL/req':>8} {'errors':>7}"
    )
    print(header + f" {'req/s vs cold':>14} {'p50 vs cold':>12}")
    for phase in phases:
        queries = "-" if phase.queries_per_request is None else f"{phase.queries_per_request:.2f}"
        speed = phase.throughput / cold.throughput
        latency = phase.percentile(0.5) / cold.percentile(0.5)
        print(
            f"{phase.name:<12} {phase.throughput:8.0f} {phase.percentile(0.5):8.2f} "
            f"{phase.percentile(0.95):8.2f} {phase.percentile(0.99):8.2f} {queries:>8} "
            f"{phase.cache_errors:7.0f} {speed:13.2f}x {latency:11.2f}x"
        )
    mean = statistics.fmean(cold.latencies_ms)
    print(f"(cold mean {mean:.2f} ms; ratios below 1 in the last column mean faster than cold;")
    print(" errors: cache operations that failed, e.g. a Redis reply slower than REDIS_SOCKET_TIMEOUT,")
    print(" each answered from the database)")


if __name__ == "__main__":
    main()
