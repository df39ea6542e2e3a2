"""CPU and Redis round trips per request on the read paths, cold and warm, in one process.

    .venv/bin/python -m bench.perf.cold_reads [--count 400] [--profile detail-l2] [--database vp_perf]

The harness's CPU table (``cpu_profile``) averages each endpoint over the mix, where most detail
and stream requests are answered from memory; this one separates what the mix hides. Each phase
replays its requests through the WSGI handler (the response cache in front, as gunicorn serves
it) in a fresh process with the production settings, timed on thread CPU time, and counts:

- **Redis round trips**: every command or pipeline the request's thread sends (redis-py's
  ``send_packed_command``: a pipeline is one), not the invalidation feed's thread;
- **SQL statements** run by the request.

Phases, in order, from an empty Redis (database and tokens as seeded):

- ``detail-db``: videos no process has read (the Zipf tail): L1 and L2 miss, the database loads;
- ``detail-l2``: the same requests in a new process: L1 misses, L2 hits (a new pod, or a video
  this process has not read yet while another pod has);
- then the same requests again in that process (L1 and the response cache), and once more after
  emptying its L1 (L2 hits in a process that has run a while: it knows the tokens and owners);
- ``stream-db``, ``stream-l2``: the same for ``/stream`` (first plays included);
- ``mix``: the harness's mix (weights, Zipf tail, signed-in share) after a warm-up, per endpoint.

It prints a table and, with ``--json``, writes the figures; it asserts nothing about timings.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


# ===== the child: one phase in one process ===================================================
def _child(
    lines_file: Path, warm: int, passes: int, out: Path, profile: bool, profiled_pass: int = 0
) -> None:
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="vp-perf-cold-"))
    from redis.connection import AbstractConnection

    from videoplatform.wsgi import application

    from .cpu_profile import _environ

    counting = threading.get_ident()
    counts = {"redis": 0, "sql": 0}
    send = AbstractConnection.send_packed_command

    def counted_send(self: Any, command: Any, check_health: bool = True) -> None:
        if threading.get_ident() == counting:
            counts["redis"] += 1
        send(self, command, check_health)

    AbstractConnection.send_packed_command = counted_send  # type: ignore[method-assign]

    from django.db import connections

    def count_sql(execute: Any, sql: Any, params: Any, many: Any, context: Any) -> Any:
        counts["sql"] += 1
        return execute(sql, params, many, context)

    wrapped: set[int] = set()

    def call(line: str) -> tuple[str, int]:
        for conn in connections.all(initialized_only=True):
            if id(conn) not in wrapped and count_sql not in conn.execute_wrappers:
                conn.execute_wrappers.append(count_sql)
                wrapped.add(id(conn))
        name, environ = _environ(line)
        status: list[str] = []
        b"".join(application(environ, lambda s, headers, exc_info=None: status.append(s)))
        return name, int(status[0].split()[0]) if status else 0

    lines = lines_file.read_text().splitlines()
    for line in lines[:warm]:
        call(line)
    measured = lines[warm:]
    if not measured:
        out.write_text(json.dumps({"passes": [], "profiled": False}))
        return
    results = []
    profiler = cProfile.Profile(time.thread_time) if profile else None
    for number in range(passes):
        if number >= 2:  # what a process that has run a while sees when an entry left its L1
            from videoplatform.cache import tiers

            tiers().l1.clear()
        if profiler is not None and number == profiled_pass:  # by default the first, cold one
            profiler.enable()
        rows: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for line in measured:
            # Connections opened by this request get the SQL counter before their first statement.
            for conn in connections.all():
                if count_sql not in conn.execute_wrappers:
                    conn.execute_wrappers.append(count_sql)
            before = dict(counts)
            started = time.thread_time()
            name, status = call(line)
            cpu = time.thread_time() - started
            row = rows[name]
            row["cpu"].append(cpu)
            row["redis"].append(counts["redis"] - before["redis"])
            row["sql"].append(counts["sql"] - before["sql"])
            row["ok"].append(1.0 if status < 400 else 0.0)
        if profiler is not None and number == profiled_pass:
            profiler.disable()
        results.append({"pass": number, "rows": rows})
    summary: dict[str, Any] = {"passes": []}
    for result in results:
        per: dict[str, Any] = {}
        for name, row in result["rows"].items():
            per[name] = {
                "requests": len(row["cpu"]),
                "cpu_ms_mean": 1000 * statistics.fmean(row["cpu"]),
                "cpu_ms_median": 1000 * statistics.median(row["cpu"]),
                "redis_mean": statistics.fmean(row["redis"]),
                "redis_max": max(row["redis"]),
                "sql_mean": statistics.fmean(row["sql"]),
                "ok": statistics.fmean(row["ok"]),
            }
        summary["passes"].append(per)
    summary["profiled"] = False
    if profiler is not None:
        summary["profiled"] = True
        profiler.dump_stats(str(out.with_suffix(".pstats")))  # for pstats' callers and callees
        buffer = io.StringIO()
        pstats.Stats(profiler, stream=buffer).sort_stats("tottime").print_stats(30)
        pstats.Stats(profiler, stream=buffer).sort_stats("cumulative").print_stats(60)
        summary["profile"] = buffer.getvalue()
    out.write_text(json.dumps(summary))


# ===== the parent: data set, phases, table ===================================================
def _phase(
    env: dict[str, str],
    lines: list[str],
    warm: int,
    passes: int,
    workdir: Path,
    name: str,
    profile: bool,
    profiled_pass: int = 0,
) -> dict[str, Any]:
    lines_file = workdir / f"{name}.tsv"
    lines_file.write_text("\n".join(lines) + "\n")
    out = workdir / f"{name}.json"
    metrics = workdir / f"{name}-metrics"
    metrics.mkdir(exist_ok=True)
    command = [sys.executable, "-m", "bench.perf.cold_reads", "--child", str(lines_file), str(warm)]
    command += [str(passes), str(out), str(profiled_pass)] + (["--profile-child"] if profile else [])
    result = subprocess.run(
        command,
        cwd=ROOT,
        env=dict(env, PROMETHEUS_MULTIPROC_DIR=str(metrics)),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if result.returncode != 0 or not out.exists():
        raise SystemExit(f"phase {name} failed:\n{result.stderr[-3000:]}")
    return dict(json.loads(out.read_text()))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.perf.cold_reads")
    parser.add_argument("--count", type=int, default=400, help="requests per phase")
    parser.add_argument("--mix", type=int, default=3000, help="requests of the mix phase (0: none)")
    parser.add_argument("--database", default="vp_perf")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13", help="the cache's Redis (flushed)")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/14", help="the broker's Redis (flushed)")
    parser.add_argument("--profile", action="append", default=[], help="phases to profile (cProfile)")
    parser.add_argument(
        "--profile-pass",
        type=int,
        default=0,
        help="which pass of a profiled phase (0: the cold one; 1: L1 hits in detail-l2 and stream-l2)",
    )
    parser.add_argument("--phases", help="comma-separated phases (default: all)")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--no-replica", action="store_true")
    args = parser.parse_args()

    import redis

    from . import seed, stack
    from .__main__ import argon2_hash, reset_run_state
    from .load import Catalogue, Requests

    services = stack.Services(database=args.database, redis=args.redis, broker=args.broker)
    replica = not args.no_replica
    stack.ensure_services(services, replica=replica)
    env = stack.production_env(services, replica=replica, s3=stack.s3_bucket(services, "vp-perf"))
    stack.create_database(services)
    stack.manage(env, "migrate", "--no-input", "-v0")
    spec = seed.SeedSpec()
    seed.seed(services.url(services.primary), services.database, spec, password_hash=argon2_hash(env))
    reset_run_state(services)
    if replica:
        stack.wait_for_replica(services)
    for url in (services.redis, services.broker):
        redis.Redis.from_url(url).flushdb()
    requests = Requests(Catalogue.from_spec(spec), seed_value=7)
    catalogue = requests.catalogue
    workdir = Path(tempfile.mkdtemp(prefix="vp-perf-cold-"))
    wanted = set(args.phases.split(",")) if args.phases else None

    # Warm-up lines every phase starts with: plans and feed pages (imports, connections, L1 of
    # the plans), never the videos a phase measures.
    warm = [requests.one("plans", viewer=requests.viewer()) for _ in range(30)]
    warm += [requests.one("feed", viewer=requests.viewer()) for _ in range(30)]
    # Detail: distinct videos from the tail (no Zipf head: each read once), 70 % signed in.
    tail = catalogue.visible[5000 : 5000 + args.count]
    detail = []
    for video in tail:
        viewer = requests.viewer()
        line = requests.one("detail", viewer=viewer)
        name, method, _, token, body = line.split("\t")
        detail.append("\t".join([name, method, f"/api/videos/{video}", token, body]))
    # Stream: the mix's draw (Zipf over the ladders; premium only for subscribers; bandwidths).
    stream = [requests.one("stream", viewer=requests.viewer()) for _ in range(args.count)]

    figures: dict[str, Any] = {}

    def run(name: str, lines: list[str], passes: int, warm_lines: list[str]) -> None:
        if wanted is not None and name.split("-")[0] not in wanted and name not in wanted:
            return
        profiled = name in args.profile
        result = _phase(
            env, warm_lines + lines, len(warm_lines), passes, workdir, name, profiled, args.profile_pass
        )
        figures[name] = result
        if "profile" in result:
            (workdir / f"{name}.profile.txt").write_text(result["profile"])
            print(f"  profile of {name}: {workdir / f'{name}.profile.txt'} (pstats: {name}.pstats)")

    started = time.monotonic()
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    # Every token's snapshot in the tokens cache first (as on a running site: a token lasts 30
    # days), so the phases measure the reads and not each client's first authentication.
    tokens = [f"me\tGET\t/api/auth/me\t{seed.token(n)}\t-" for n in range(spec.token_users)]
    _phase(env, tokens, len(tokens), 0, workdir, "tokens", False)
    run("detail-db", detail, 1, warm)
    run("detail-l2", detail, 3, warm)  # L1 misses and L2 hits; L1 hits; L1 emptied, L2 hits
    run("stream-db", stream, 1, warm)
    run("stream-l2", stream, 3, warm)
    if args.mix:
        mix = requests.mix(args.mix + 300)
        run("mix", mix[300:], 1, warm + mix[:300])
    print(
        f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}"
        f" ({time.monotonic() - started:.0f} s)"
    )

    header = "| phase | endpoint | requests | CPU ms mean | CPU ms median | Redis round trips | (max) | SQL |"
    print(header)
    print("|---|---|---|---|---|---|---|---|")
    labels = {
        ("detail-db", 0): "detail, L1 and L2 miss",
        ("detail-l2", 0): "detail, L1 miss, L2 hit",
        ("detail-l2", 1): "detail, L1 hit",
        ("detail-l2", 2): "detail, L1 miss, L2 hit, in a process that has run a while",
        ("stream-db", 0): "stream, L1 and L2 miss",
        ("stream-l2", 0): "stream, L1 miss, L2 hit",
        ("stream-l2", 1): "stream, L1 hit",
        ("stream-l2", 2): "stream, L1 miss, L2 hit, in a process that has run a while",
    }
    for phase, result in figures.items():
        for number, per in enumerate(result["passes"]):
            for endpoint, row in sorted(per.items(), key=lambda item: -item[1]["requests"]):
                print(
                    f"| {labels.get((phase, number), phase)}"
                    + (" (under cProfile)" if result.get("profiled") and number == args.profile_pass else "")
                    + f" | {endpoint} | {row['requests']} "
                    f"| {row['cpu_ms_mean']:.2f} | {row['cpu_ms_median']:.2f} | {row['redis_mean']:.2f} "
                    f"| {row['redis_max']} | {row['sql_mean']:.2f} |"
                    + ("" if row["ok"] == 1 else f" ({100 * (1 - row['ok']):.0f} % errors)")
                )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(
            Path(sys.argv[2]),
            int(sys.argv[3]),
            int(sys.argv[4]),
            Path(sys.argv[5]),
            "--profile-child" in sys.argv,
            int(sys.argv[6]),
        )
    else:
        main()
