"""What a fresh process spends its first requests on: the mix replayed through the WSGI handler
in a new process (as ``cpu_profile`` does: one thread, thread CPU time, so the machine's other
work does not count), its CPU per request in consecutive buckets of requests, with and without
the worker warm-up that gunicorn runs before a worker takes requests (``post_worker_init``).

Run by the harness after a server has served the mix (Redis warm, its hot-key set current) as
``python -m bench.perf.cold_start REQUESTS_FILE COUNT BUCKET OUT_JSON [--warm] [--profile N]``;
``--profile N`` also runs cProfile (same clock) over the first N requests and reports the areas.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import tempfile
import time
from pathlib import Path
from typing import Any

from .cpu_profile import _environ, profile_shares


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("requests_file", type=Path)
    parser.add_argument("count", type=int)
    parser.add_argument("bucket", type=int)
    parser.add_argument("out", type=Path)
    parser.add_argument("--warm", action="store_true")
    parser.add_argument("--profile", type=int, default=0)
    parser.add_argument("--dump", type=Path, help="where to write the cProfile statistics (pstats)")
    args = parser.parse_args()
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="vp-perf-cold-"))

    started_cpu, started_wall = time.process_time(), time.monotonic()
    from videoplatform.wsgi import application

    result: dict[str, Any] = {
        "warm": args.warm,
        "import_cpu_s": round(time.process_time() - started_cpu, 3),
        "import_wall_s": round(time.monotonic() - started_wall, 3),
    }
    if args.warm:
        from videoplatform.entry import warmup

        cpu, wall = time.process_time(), time.monotonic()
        warmup.initialise()
        warmup.connect()
        warmup.open_in_this_thread()  # this thread serves the requests (a gunicorn thread's part)
        warmed = warmup.warm_l1()
        result.update(
            warmup_cpu_s=round(time.process_time() - cpu, 3),
            warmup_wall_s=round(time.monotonic() - wall, 3),
            warmup=warmed.describe(),
            warmed_entries=warmed.kept,
        )

    lines = args.requests_file.read_text().splitlines()[: args.count]

    def call(line: str) -> None:
        _, environ = _environ(line)
        b"".join(application(environ, lambda status, headers, exc_info=None: None))

    profiler = cProfile.Profile(time.thread_time) if args.profile else None
    buckets: list[float] = []
    spent = 0.0
    for index, line in enumerate(lines):
        if profiler is not None and index == 0:
            profiler.enable()
        before = time.thread_time()
        call(line)
        spent += time.thread_time() - before
        if profiler is not None and index + 1 == args.profile:
            profiler.disable()
        if (index + 1) % args.bucket == 0:
            buckets.append(1000 * spent / args.bucket)
            spent = 0.0
    result["bucket"] = args.bucket
    result["cpu_ms_per_request"] = [round(value, 3) for value in buckets]
    if profiler is not None:
        stats = pstats.Stats(profiler)
        if args.dump:
            stats.dump_stats(str(args.dump))
        result["areas"], result["self"] = profile_shares(stats, top=20)
        result["profile_requests"] = args.profile
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
