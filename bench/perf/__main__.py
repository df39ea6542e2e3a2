"""Runs the performance harness; see bench/perf/__init__.py and docs/performance.md.

    .venv/bin/python -m bench.perf                 # full run, about 12 minutes
    .venv/bin/python -m bench.perf --quick         # about 4 minutes: shorter phases, no ablations
    .venv/bin/python -m bench.perf --update-docs   # also writes the figures into docs/performance.md

It prints figures and asserts nothing about timings; the exit status is 0 unless the harness
itself failed (a server that would not start, wrk missing and not installable).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from . import load, profiles, ramp, report, seed, stack
from .load import ENDPOINTS, Catalogue, LoadResult, Requests
from .stack import ROOT, Server, Services

DOC = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- bench.perf:begin -->", "<!-- bench.perf:end -->"
# A --ramp-only run writes its own section (the full run's "Last run" stays as it is).
RAMP_BEGIN, RAMP_END = "<!-- bench.perf.ramp:begin -->", "<!-- bench.perf.ramp:end -->"
SKIP_HEADERS = {"date", "server", "connection", "transfer-encoding", "keep-alive"}
FLOOR_TARGETS = {"detail": 0.60, "plans": 0.60, "feed": 0.40}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.perf", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=45, help="each mix run (paced, saturation)")
    parser.add_argument("--endpoint-seconds", type=float, default=8, help="each floor/app run per endpoint")
    parser.add_argument("--rounds", type=int, default=3, help="floor/app rounds per endpoint")
    parser.add_argument(
        "--connections", type=int, default=16, help="keep-alive connections (one wrk thread each)"
    )
    parser.add_argument("--rate", type=float, default=1000, help="the paced mix's req/s (the HPA target)")
    parser.add_argument(
        "--workers", help="GUNICORN_WORKERS for the app and the floor (default: the config's)"
    )
    parser.add_argument("--threads", help="GUNICORN_THREADS (default: the config's)")
    parser.add_argument(
        "--warmup",
        type=float,
        # Past the video entries' TTL (CACHE_TTL_VIDEO, 300 s): the first entries then expire
        # and the shared tier's hit ratio over the Zipf tail stops rising.
        default=360,
        help="seconds of the mix before the measurements, reported as a curve (the steady state)",
    )
    parser.add_argument(
        "--ramp-seconds", type=float, default=40, help="how long each new server's ramp is followed"
    )
    parser.add_argument(
        "--ramp-rounds", type=int, default=2, help="how many times each kind of new server is started"
    )
    parser.add_argument(
        "--ramp-only",
        action="store_true",
        help="the steady state, the new-server ramps and the floor beside them; nothing else",
    )
    parser.add_argument(
        "--logins-only",
        action="store_true",
        help="the steady state, then the login benchmark and readers beside a burst of logins",
    )
    parser.add_argument("--quick", action="store_true", help="short phases, no ablations")
    parser.add_argument("--no-replica", action="store_true", help="primary only (no DATABASE_REPLICA_URLS)")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profile")
    parser.add_argument(
        "--ablations",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="measure each optimisation off and on (default: on unless --quick)",
    )
    parser.add_argument(
        "--update-docs", action="store_true", help="write the figures into docs/performance.md"
    )
    parser.add_argument("--out", default=str(ROOT / "var" / "perf"), help="where reports are written")
    parser.add_argument("--database", default="vp_perf")
    parser.add_argument(
        "--redis",
        default=Services.redis,
        help="the cache's Redis database (flushed at the start)",
    )
    parser.add_argument(
        "--broker",
        default=None,
        help="the Celery broker (flushed at the start; default: the next Redis database)",
    )
    parser.add_argument(
        "--mix-only",
        action="store_true",
        help="stop after the saturation mix and its figures (no ramps, floor, CPU profile, logins, variants)",
    )
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.endpoint_seconds, args.rounds = (
            min(args.seconds, 20),
            min(args.endpoint_seconds, 5),
            2,
        )
        args.warmup, args.ramp_seconds = min(args.warmup, 45), min(args.ramp_seconds, 25)
        args.ramp_rounds = min(args.ramp_rounds, 1)
    if args.ablations is None:
        args.ablations = not args.quick
    return args


def next_database(url: str) -> str:
    """The same Redis server's next database number (the broker beside the cache)."""
    base, _, number = url.rstrip("/").rpartition("/")
    return f"{base}/{int(number) + 1}" if number.isdigit() else f"{url.rstrip('/')}/1"


def machine_info(wrk: str, services: Services) -> dict[str, Any]:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory_kib = int(Path("/proc/meminfo").read_text().split()[1])
    os_name = platform.platform(terse=True)
    with stack.contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    wrk_version = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False).stdout.split()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory_kib / 1024 / 1024,
        "os": os_name,
        "python": platform.python_version(),
        "postgresql": stack.psql(services.url(services.primary, "postgres"), "SHOW server_version")[0][
            0
        ].split()[0],
        "redis": redis.Redis.from_url(services.redis).info("server")["redis_version"],
        "wrk": wrk_version[1] if len(wrk_version) > 1 else "?",
        "load_before": " ".join(f"{v:.2f}" for v in os.getloadavg()),
    }


def argon2_hash(env: dict[str, str]) -> Any:
    def make(password: str) -> str:
        code = f"from django.contrib.auth.hashers import make_password; print(make_password({password!r}))"
        return stack.manage(env, "shell", "-c", code).strip().splitlines()[-1]

    return make


# The rows the load's creates add (the description every created video gets).
CREATED = "SELECT id FROM videos_video WHERE description LIKE %s"


def reset_run_state(services: Services) -> None:
    """Rows earlier runs wrote (videos created, tokens from logins, plays) and the Redis
    databases of the cache and the broker: every run starts from the same state."""
    url = services.url(services.primary)
    marker = "Uploaded during a load test.%"
    stack.psql(
        url,
        f"DELETE FROM streaming_mediafile WHERE video_id IN ({CREATED})",
        [marker],
    )
    stack.psql(
        url,
        f"DELETE FROM videos_videosearchdocument WHERE video_id IN ({CREATED})",
        [marker],
    )
    stack.psql(
        url,
        f"DELETE FROM videos_relatedvideos WHERE video_id IN ({CREATED})",
        [marker],
    )
    stack.psql(url, "DELETE FROM videos_video WHERE description LIKE %s", [marker])
    stack.psql(url, "DELETE FROM accounts_authtoken WHERE user_agent <> 'perf'")
    stack.psql(url, "TRUNCATE streaming_watchevent")
    for db_url in (services.redis, services.broker):
        redis.Redis.from_url(db_url).flushdb()


def capture(server: Server, path: str) -> dict[str, Any]:
    status, headers, body = server.get(path, headers={"Accept-Encoding": "gzip, br"})
    if status != 200:
        raise SystemExit(f"{path} answered {status}: {body[:300]!r}")
    reason = {200: "200 OK"}[status]
    kept = [[name, value] for name, value in headers if name.lower() not in SKIP_HEADERS]
    return {"status": reason, "headers": kept, "body": base64.b64encode(body).decode(), "bytes": len(body)}


def capture_line(server: Server, line: str) -> dict[str, Any]:
    """The answer to one request line of the load (for the floor to serve the same bytes)."""
    name, method, path, token, body = line.split("\t")
    headers = {"Accept-Encoding": "gzip, br"}
    if token != "-":
        headers["Authorization"] = f"Bearer {token}"
    status, answer_headers, content = server.request(
        method, path, headers=headers, body=json.loads(body) if body != "-" else None
    )
    expected = ENDPOINTS[name][1]
    if status != expected:
        raise SystemExit(f"{method} {path} answered {status}: {content[:300]!r}")
    kept = [[key, value] for key, value in answer_headers if key.lower() not in SKIP_HEADERS]
    reason = {200: "200 OK", 201: "201 Created"}[status]
    return {
        "status": reason,
        "headers": kept,
        "body": base64.b64encode(content).decode(),
        "bytes": len(content),
    }


# New servers started under load: as shipped, and with the start-up warm-up switched off.
RAMPS: list[tuple[str, str, dict[str, str]]] = [
    ("warmed", "as shipped: warmed before it is ready", {}),
    (
        "not warmed",
        "no warm-up, not preloaded (WORKER_WARMUP_TIMEOUT=0, GUNICORN_PRELOAD=false)",
        {"WORKER_WARMUP_TIMEOUT": "0", "GUNICORN_PRELOAD": "false"},
    ),
]


def new_pod_ramps(
    env: dict[str, str], app: Server, wrk: str, requests: Requests, args: argparse.Namespace, workdir: Path
) -> list[dict[str, Any]]:
    """Each new server of ``RAMPS`` in turn, ``--ramp-rounds`` times (alternating); one row per
    kind with the median ratio over the rounds and the mean per-second curve."""
    runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for round_index in range(args.ramp_rounds):
        for label, what, overrides in RAMPS:
            print(f"new server ({label}, round {round_index + 1}) started under the mix, then takes it")
            fresh = Server(f"new-{label.replace(' ', '-')}", dict(env, **overrides))
            row = _one_ramp(app, fresh, wrk, requests, args, workdir)
            row.update(label=label, what=what)
            runs[label].append(row)
    rows = []
    for label, what, _ in RAMPS:
        done = runs[label]
        ratios = [row["first_15s_ratio"] for row in done if row["first_15s_ratio"] is not None]
        width = min(len(row["per_second"]) for row in done)
        rows.append(
            {
                "label": label,
                "what": what,
                "rounds": len(done),
                "ready_after_s": statistics.median(row["ready_after_s"] for row in done),
                "reference_rps": statistics.median(row["reference_rps"] for row in done),
                "first_15s_rps": statistics.median(row["first_15s_rps"] for row in done),
                "first_15s_ratio": round(statistics.median(ratios), 3) if ratios else None,
                "first_15s_ratios": ratios,
                "last_rps": statistics.median(row["last_rps"] for row in done),
                "per_second": [
                    {
                        "t": float(t),
                        "rps": round(statistics.fmean(row["per_second"][t]["rps"] for row in done), 1),
                    }
                    for t in range(width)
                ],
                "errors": sum(row["errors"] for row in done),
                "runs": done,
            }
        )
    return rows


def _one_ramp(
    app: Server, fresh: Server, wrk: str, requests: Requests, args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    row = ramp.new_pod_ramp(
        wrk, app, fresh, requests, seconds=args.ramp_seconds, connections=args.connections, workdir=workdir
    )
    seconds = " ".join(f"{cell['rps']:,.0f}" for cell in row["per_second"])
    print(
        f"  ready after {row['ready_after_s']:.1f} s; first 15 s {row['first_15s_rps']:,.0f} req/s"
        f" = {100 * (row['first_15s_ratio'] or 0):.0f} % of {row['reference_rps']:,.0f} (the first"
        f" server just before); per second: {seconds}"
    )
    return row


def cold_start(
    env: dict[str, str], requests: Requests, workdir: Path, count: int = 14_000, bucket: int = 500
) -> dict[str, Any]:
    """CPU per request of a fresh process over its first ``count`` requests of the mix, in
    buckets: without the warm-up and with it, both at once (bench/perf/cold_start.py), and where
    the first 1,000 of a cold one go. Each run draws its own requests from the mix.

    From them, the first 15 s of a worker in CPU terms: the requests one core serves in its first
    15 s of CPU (the buckets' CPU added up), against the 15 s at the steady CPU per request (the
    last 3,000 requests of both runs): what a new pod serves in its first 15 s relative to its
    steady state when the CPU is what limits it, whatever the machine's other work."""
    runs: dict[str, Any] = {}
    # The cold and the warmed process run at the same time, so that the machine's other work
    # (which slows a thread's CPU too: caches, shared cores) weighs on both alike; then the
    # profiled one.
    for batch in (
        (("cold", [], count), ("warmed", ["--warm"], count)),
        (("cold, profiled", ["--profile", "1000"], 1000),),
    ):
        started = []
        for label, flags, size in batch:
            index = len(runs) + len(started)
            lines_file = workdir / f"cold-start-{index}.requests.tsv"
            lines_file.write_text("\n".join(requests.mix(size)) + "\n")
            out = workdir / f"cold-start-{index}.json"
            metrics = workdir / f"cold-start-{index}-metrics"
            metrics.mkdir(exist_ok=True)
            command = [sys.executable, "-m", "bench.perf.cold_start", str(lines_file), str(size), str(bucket)]
            process = subprocess.Popen(
                [*command, str(out), *flags],
                cwd=ROOT,
                env=dict(env, PROMETHEUS_MULTIPROC_DIR=str(metrics)),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            started.append((label, process, out))
        for label, process, out in started:
            _, stderr = process.communicate(timeout=1800)
            if process.returncode != 0 or not out.exists():
                print(f"  the cold-start run ({label}) failed: {stderr[-1500:]}")
                continue
            runs[label] = json.loads(out.read_text())
            values = runs[label]["cpu_ms_per_request"]
            print(f"  {label:<15} CPU ms per request, per {bucket}: " + " ".join(f"{v:.2f}" for v in values))
    return cold_start_summary(runs, bucket)


def cold_start_summary(runs: dict[str, Any], bucket: int, window: float = 15.0) -> dict[str, Any]:
    """The first ``window`` seconds of CPU of the cold and the warmed process (fewer when a run
    spent less): the requests served in them against the same CPU at the steady cost per request
    (the last 3,000 requests of both runs)."""
    summary: dict[str, Any] = {"runs": runs}
    measured = [label for label in ("cold", "warmed") if label in runs]
    tails = [
        value for label in measured for value in runs[label]["cpu_ms_per_request"][-max(1, 3000 // bucket) :]
    ]
    if not tails:
        return summary
    steady_ms = statistics.fmean(tails)
    spent_ms = min(sum(runs[label]["cpu_ms_per_request"]) * bucket for label in measured)
    window_ms = min(window * 1000, spent_ms)
    summary.update(steady_ms=round(steady_ms, 3), window_s=round(window_ms / 1000, 1))
    summary["steady_requests_in_window"] = round(window_ms / steady_ms)
    for label in measured:
        spent, served = 0.0, 0.0
        for value in runs[label]["cpu_ms_per_request"]:
            if spent + value * bucket >= window_ms:
                served += (window_ms - spent) / value
                break
            spent += value * bucket
            served += bucket
        runs[label]["first_window_requests"] = round(served)
        runs[label]["first_window_ratio"] = round(served * steady_ms / window_ms, 3)
        print(
            f"  {label}: {served:,.0f} requests in its first {window_ms / 1000:.1f} s of CPU, "
            f"{100 * served * steady_ms / window_ms:.0f} % of the steady {window_ms / steady_ms:,.0f}"
        )
    return summary


def endpoint_lines(requests: Requests, name: str, count: int = 4000) -> list[str]:
    # Warm endpoints: a hot set every worker has cached (500 videos, the first 5 feed pages).
    return requests.single(name, count, hot={"detail": 500, "feed": 5}.get(name))


def measure(
    server: Server,
    wrk: str,
    lines: list[str],
    label: str,
    seconds: float,
    args: argparse.Namespace,
    workdir: Path,
    rate: float = 0.0,
    connections: int | None = None,
    honour_retry_after: bool = False,
) -> LoadResult:
    return load.run_wrk(
        wrk,
        server.base_url,
        lines,
        label=label,
        seconds=seconds,
        connections=connections or args.connections,
        workdir=workdir,
        rate=rate,
        server_cpu=server.cpu_seconds,
        honour_retry_after=honour_retry_after,
    )


def floor_comparison(
    app: Server,
    floor: Server,
    wrk: str,
    requests: Requests,
    args: argparse.Namespace,
    workdir: Path,
    names: tuple[str, ...] = ("detail", "plans", "feed"),
) -> dict[str, Any]:
    rows = []
    for name in names:
        lines = endpoint_lines(requests, name)
        floor_runs, app_runs = [], []
        measure(app, wrk, lines, f"warm-{name}", 2, args, workdir)
        for round_index in range(args.rounds):
            floor_runs.append(
                measure(
                    floor, wrk, lines, f"floor-{name}-{round_index}", args.endpoint_seconds, args, workdir
                )
            )
            app_runs.append(
                measure(app, wrk, lines, f"app-{name}-{round_index}", args.endpoint_seconds, args, workdir)
            )
        ratios = [a.rps / f.rps for a, f in zip(app_runs, floor_runs, strict=True) if f.rps]
        ratio = statistics.median(ratios) if ratios else 0.0
        app_errors = sum(run.errors for run in app_runs)
        rows.append(
            {
                "endpoint": name,
                "floor_rps": statistics.median(run.rps for run in floor_runs),
                "app_rps": statistics.median(run.rps for run in app_runs),
                "ratio": ratio,
                "ratio_min": min(ratios, default=0.0),
                "ratio_max": max(ratios, default=0.0),
                "ratios": [round(r, 3) for r in ratios],
                "floor_wrk_cores": statistics.median(run.wrk_cpu / run.seconds for run in floor_runs),
                "app_p50_ms": statistics.median(run.endpoints[name].p50 for run in app_runs),
                "app_p99_ms": max(run.endpoints[name].p99 for run in app_runs),
                "app_errors": app_errors,
                "target": FLOOR_TARGETS.get(name, 0.0),
                "ok": ratio >= FLOOR_TARGETS.get(name, 0.0) and app_errors == 0,
            }
        )
        print(
            f"  {name:<7} floor {rows[-1]['floor_rps']:7,.0f} req/s  app {rows[-1]['app_rps']:7,.0f} req/s  "
            f"ratio {100 * ratio:4.0f} % (rounds: {', '.join(f'{100 * r:.0f} %' for r in ratios)})"
        )
    return {
        "rounds": args.rounds,
        "seconds": args.endpoint_seconds,
        "connections": args.connections,
        "endpoints": rows,
    }


def during_mix(
    before: stack.Samples, after: stack.Samples, seconds: float, xacts: dict[str, float]
) -> dict[str, Any]:
    counts = stack.delta(after, before, "http_request_db_queries_count")
    sums = stack.delta(after, before, "http_request_db_queries_sum")
    db_seconds = stack.delta(after, before, "http_request_db_seconds_sum")
    rows = []
    for labels, count in sorted(counts.items(), key=lambda item: -item[1]):
        label = dict(labels)
        if not label.get("view", "").startswith("api/"):
            continue
        rows.append(
            {
                "method": label["method"],
                "view": label["view"],
                "requests": int(count),
                "queries": sums.get(labels, 0.0) / count,
                "db_ms": 1000 * db_seconds.get(labels, 0.0) / count,
            }
        )
    lookups = stack.delta(after, before, "cache_requests_total")
    loads = stack.delta(after, before, "cache_loads_total")
    per_kind: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for labels, value in lookups.items():
        label = dict(labels)
        per_kind[label["kind"]][f"{label['tier']}_{label['result']}"] += value
    cache_rows = []
    for kind, values in sorted(per_kind.items()):
        l1_total = values["l1_hit"] + values["l1_miss"]
        l2_total = values["l2_hit"] + values["l2_miss"] + values["l2_stale"]
        cache_rows.append(
            {
                "kind": kind,
                "l1_hit": values["l1_hit"] / l1_total if l1_total else None,
                "l2_hit": (values["l2_hit"] + values["l2_stale"]) / l2_total if l2_total else None,
                "lookups": int(l1_total or l2_total),
                "loads": int(sum(v for labels, v in loads.items() if dict(labels).get("kind") == kind)),
            }
        )
    statements = stack.delta(after, before, "db_queries_total")
    by_alias: dict[str, float] = defaultdict(float)
    reads_by_alias: dict[str, float] = defaultdict(float)
    for labels, value in statements.items():
        label = dict(labels)
        if label.get("kind") != "other":
            by_alias[label["alias"]] += value
        if label.get("kind") == "read":
            reads_by_alias[label["alias"]] += value
    replica_reads = sum(value for alias, value in reads_by_alias.items() if alias.startswith("replica"))
    routed = stack.delta(after, before, "db_reads_routed_total")
    reasons: dict[str, float] = defaultdict(float)
    for labels, value in routed.items():
        label = dict(labels)
        reasons[f"{label['alias']}/{label['reason']}"] += value
    probes = sum(stack.delta(after, before, "db_replica_lsn_probes_total").values())
    answers = {
        dict(labels)["result"]: value
        for labels, value in stack.delta(after, before, "response_cache_requests_total").items()
    }
    return {
        "queries_per_request": rows,
        "cache": cache_rows,
        # API GETs answered by the response cache (no Django) and those Django answered.
        "response_cache": {
            result: answers.get(result, 0.0) / seconds for result in ("hit", "miss", "stored")
        },
        "database": {
            "primary_xact_per_s": xacts["primary"] / seconds,
            "replica_xact_per_s": xacts["replica"] / seconds,
            "statements_per_s": sum(by_alias.values()) / seconds,
            "statements_by_alias": ", ".join(
                f"{alias} {value / seconds:,.0f}/s" for alias, value in sorted(by_alias.items())
            ),
            "replica_read_share": replica_reads / sum(reads_by_alias.values()) if reads_by_alias else None,
            "replica_xact_share": xacts["replica"] / (xacts["primary"] + xacts["replica"])
            if xacts["primary"] + xacts["replica"]
            else None,
            "routed": ", ".join(f"{key} {value / seconds:,.1f}/s" for key, value in sorted(reasons.items())),
            "position_probes_per_s": probes / seconds,
        },
    }


def login_benchmark(
    app: Server, wrk: str, requests: Requests, args: argparse.Namespace, workdir: Path, env: dict[str, str]
) -> dict[str, Any]:
    lines = requests.single("login", 2000)
    levels = []
    for concurrency in (1, 2, 4, 8):
        run = measure(
            app,
            wrk,
            lines,
            f"login-{concurrency}",
            max(6.0, args.endpoint_seconds),
            args,
            workdir,
            connections=concurrency,
            honour_retry_after=True,  # a shed login comes back after Retry-After, as apps do
        )
        stats = run.endpoints["login"]
        shed = stats.statuses.get(503, 0)  # a burst: answered at once, to be retried
        levels.append(
            {
                "concurrency": concurrency,
                "rps": stats.statuses.get(200, 0) / run.seconds if run.seconds else 0.0,
                "shed_rps": shed / run.seconds if run.seconds else 0.0,
                "p50_ms": stats.p50,
                "p95_ms": stats.p95,
                "p99_ms": stats.p99,
                "errors": stats.errors - shed,
                "ok": stats.p50 <= 150 and stats.p95 <= 300 and stats.errors == shed,
            }
        )
        print(
            f"  {concurrency} concurrent logins: {levels[-1]['rps']:5.1f} signed in/s"
            f" ({levels[-1]['shed_rps']:.1f} shed/s)  P50 {stats.p50:6.1f} ms  P95 {stats.p95:6.1f} ms"
        )
    argon2 = {
        "time_cost": int(env.get("ARGON2_TIME_COST", "2")),
        "memory_kib": int(env.get("ARGON2_MEMORY_COST_KIB", "19456")),
        "parallelism": int(env.get("ARGON2_PARALLELISM", "1")),
    }
    return {"argon2": argon2, "levels": levels}


def cpu_profile(env: dict[str, str], requests: Requests, workdir: Path, count: int = 3000) -> dict[str, Any]:
    lines_file = workdir / "cpu-profile.requests.tsv"
    lines_file.write_text("\n".join(requests.mix(count + 300)) + "\n")
    out = workdir / "cpu-profile.json"
    run_env = dict(env, PROMETHEUS_MULTIPROC_DIR=str(workdir / "cpu-profile-metrics"))
    (workdir / "cpu-profile-metrics").mkdir(exist_ok=True)
    result = subprocess.run(
        [sys.executable, "-m", "bench.perf.cpu_profile", str(lines_file), str(count), str(out)],
        cwd=ROOT,
        env=run_env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if result.returncode != 0 or not out.exists():
        print(f"  the CPU profile failed: {result.stderr[-1500:]}")
        return {}
    return dict(json.loads(out.read_text()))


def logins_beside_readers(
    env: dict[str, str],
    app: Server,
    wrk: str,
    requests: Requests,
    args: argparse.Namespace,
    workdir: Path,
    logins: int = 8,
    readers: int = 8,
) -> list[dict[str, Any]]:
    """Readers (the mix without its writes) and a burst of ``logins`` concurrent logins at once,
    on the shipped server (hashes bounded per process, logins shed in a burst), on one whose
    logins always wait for the bound, and on one without the bound."""
    import threading

    reader_lines = [
        line for line in requests.mix(40_000) if line.split("\t", 1)[0] not in ("login", "create")
    ]
    login_lines = requests.single("login", 2000)
    seconds = max(6.0, args.endpoint_seconds)
    rows = []
    others = [
        Server("logins wait", dict(env, LOGIN_HASH_SHED_AFTER="0")),
        Server("unbounded logins", dict(env, LOGIN_HASH_CONCURRENCY="0")),
    ]
    try:
        for other in others:
            other.start(ready_path="/ready")
            measure(other, wrk, requests.mix(20_000), f"{other.name}-warm", 10, args, workdir)
        servers = [
            ("as shipped: 1 hash per process, logins shed in a burst", app),
            ("1 hash per process, logins wait", others[0]),
            ("no bound", others[1]),
        ]
        for label, server in servers:
            alone = measure(
                server, wrk, reader_lines, "readers-alone", seconds, args, workdir, connections=readers
            )
            burst: dict[str, LoadResult] = {}
            thread = threading.Thread(
                target=lambda s=server, out=burst: out.update(
                    run=measure(
                        s, wrk, login_lines, "logins-burst", seconds, args, workdir, connections=logins
                    )
                )
            )
            thread.start()
            beside = measure(
                server, wrk, reader_lines, "readers-beside", seconds, args, workdir, connections=readers
            )
            thread.join()
            run = burst["run"]
            login_stats = run.endpoints["login"]
            signed_in = login_stats.statuses.get(200, 0) / run.seconds if run.seconds else 0.0
            shed = login_stats.statuses.get(503, 0) / run.seconds if run.seconds else 0.0
            p95 = {name: stats.p95 for name, stats in beside.endpoints.items()}
            rows.append(
                {
                    "label": label,
                    "readers_alone_rps": round(alone.rps, 1),
                    "readers_beside_rps": round(beside.rps, 1),
                    "readers_p95_alone_ms": {name: round(st.p95, 1) for name, st in alone.endpoints.items()},
                    "readers_p95_beside_ms": {name: round(v, 1) for name, v in p95.items()},
                    "logins_rps": round(signed_in, 1),
                    "logins_shed_rps": round(shed, 1),
                    "login_p50_ms": round(login_stats.p50, 1),
                    "login_p95_ms": round(login_stats.p95, 1),
                    "errors": beside.errors + run.errors - login_stats.statuses.get(503, 0),
                }
            )
            row = rows[-1]
            print(
                f"  {label}: readers {row['readers_alone_rps']:,.0f} req/s alone, "
                f"{row['readers_beside_rps']:,.0f} beside {logins} concurrent logins "
                f"({row['logins_rps']:.1f} signed in/s, {row['logins_shed_rps']:.1f} shed/s, "
                f"P95 {row['login_p95_ms']:.0f} ms)"
            )
    finally:
        for other in others:
            other.stop()
    return rows


ALL_OFF = "bytes_cache,orjson,templates,negotiation,compression_reuse"
OLD_GUNICORN = {
    "GUNICORN_WORKERS": "2x",
    "GUNICORN_THREADS": "4",
    "GUNICORN_MAX_REQUESTS": "20000",
    "GUNICORN_MAX_REQUESTS_JITTER": "2000",
}
NO_RESPONSE_CACHE = {"RESPONSE_CACHE_ENTRIES": "0", "API_THROTTLE_SYNC_INTERVAL": "0"}
VARIANTS: list[tuple[str, str, dict[str, str]]] = [
    # (name, what differs from the shipped code, environment); each adds one step to the previous.
    (
        "before",
        "every optimisation off; gunicorn 2 workers per core x 4 threads, recycled every 20,000",
        {"PERF_DISABLE": ALL_OFF, **OLD_GUNICORN, **NO_RESPONSE_CACHE},
    ),
    (
        "+ gunicorn layout",
        "1 worker per core x 2 threads, recycled every 500,000",
        {"PERF_DISABLE": ALL_OFF, **NO_RESPONSE_CACHE},
    ),
    (
        "+ serializer templates",
        "no rendered bodies, DRF's JSON, DRF's negotiation, no compressed-body reuse",
        {"PERF_DISABLE": "bytes_cache,orjson,negotiation,compression_reuse", **NO_RESPONSE_CACHE},
    ),
    (
        "+ negotiation, compressed bodies",
        "no rendered bodies, DRF's JSON",
        {"PERF_DISABLE": "bytes_cache,orjson", **NO_RESPONSE_CACHE},
    ),
    ("+ orjson", "no rendered bodies", {"PERF_DISABLE": "bytes_cache", **NO_RESPONSE_CACHE}),
    ("+ rendered bodies", "no response cache, a throttle round trip per request", dict(NO_RESPONSE_CACHE)),
    ("+ response cache", "a throttle round trip per request", {"API_THROTTLE_SYNC_INTERVAL": "0"}),
    ("+ throttle counted in batches (after)", "nothing: as shipped", {}),
    # Not this harness's optimisation: the data layer keeps connections (CONN_MAX_AGE 600 through
    # PgBouncer); what a new connection per request would cost.
    (
        "contrast: CONN_MAX_AGE=0",
        "as shipped, but a new database connection per request",
        {"DB_CONN_MAX_AGE": "0"},
    ),
]


def ablations(
    base_env: dict[str, str],
    floor: Server,
    wrk: str,
    requests: Requests,
    args: argparse.Namespace,
    workdir: Path,
) -> list[dict[str, Any]]:
    """Each optimisation added in turn. Every variant runs at once (idle servers cost next to
    nothing), and each round measures the floor and then every variant on one endpoint, back to
    back, so that the machine's other work weighs on all of them alike; medians over the rounds."""
    cores = len(os.sched_getaffinity(0))
    seconds = min(args.endpoint_seconds, 5)
    mix_lines = requests.mix(30_000)
    servers: list[tuple[str, str, Server]] = []
    try:
        for name, what, overrides in VARIANTS:
            env = dict(base_env)
            env.update(overrides)
            if env.get("GUNICORN_WORKERS") == "2x":
                env["GUNICORN_WORKERS"] = str(2 * cores)
            if overrides.get("PERF_DISABLE"):
                env["DJANGO_SETTINGS_MODULE"] = "bench.perf.variant_settings"
            server = Server(f"variant {name}", env)
            server.start()
            servers.append((name, what, server))
            measure(server, wrk, mix_lines, "variant-warm", 6, args, workdir)
        app_rps: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        ratios: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        floor_rps: dict[str, list[float]] = defaultdict(list)
        mix_rps: dict[str, list[float]] = defaultdict(list)
        mix_p95: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for round_index in range(args.rounds):
            print(f"variants: round {round_index + 1} of {args.rounds}")
            for endpoint in ("detail", "plans", "feed"):
                lines = endpoint_lines(requests, endpoint)
                for _, _, server in servers:
                    measure(server, wrk, lines, "variant-warm", 1, args, workdir)
                base = measure(floor, wrk, lines, "variant-floor", seconds, args, workdir).rps
                floor_rps[endpoint].append(base)
                for name, _, server in servers:
                    rps = measure(server, wrk, lines, "variant-endpoint", seconds, args, workdir).rps
                    app_rps[name][endpoint].append(rps)
                    ratios[name][endpoint].append(rps / base if base else 0.0)
            for name, _, server in servers:
                mix = measure(server, wrk, mix_lines, "variant-mix", max(seconds, 8), args, workdir)
                mix_rps[name].append(mix.rps)
                for key, stats in mix.endpoints.items():
                    mix_p95[name][key].append(stats.p95)
        rows = []
        for name, what, _ in servers:
            rows.append(
                {
                    "variant": name,
                    "what": what,
                    "contrast": name.startswith("contrast"),
                    "mix_rps": statistics.median(mix_rps[name]),
                    "mix_rps_rounds": [round(v) for v in mix_rps[name]],
                    "mix_p95_ms": {key: statistics.median(v) for key, v in mix_p95[name].items()},
                    "rps": {e: statistics.median(v) for e, v in app_rps[name].items()},
                    "ratio": {e: statistics.median(v) for e, v in ratios[name].items()},
                    "ratio_rounds": {e: [round(r, 3) for r in v] for e, v in ratios[name].items()},
                    "floor_rps": {e: statistics.median(v) for e, v in floor_rps.items()},
                }
            )
            row = rows[-1]
            print(
                f"  {name:<48} mix {row['mix_rps']:6,.0f}  "
                + "  ".join(
                    f"{e} {row['rps'][e]:6,.0f} ({100 * row['ratio'][e]:3.0f} %)"
                    for e in ("detail", "plans", "feed")
                )
            )
        return rows
    finally:
        for _, _, server in servers:
            server.stop()


def targets(rep: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    paced = rep.get("mix_paced")
    if paced:
        inside = all(
            stats["p95_ms"] <= ENDPOINTS[name][2][1]  # type: ignore[index]
            for name, stats in paced["endpoints"].items()
            if ENDPOINTS.get(name, (0, 0, None))[2] is not None
        )
        sustained = paced["rps"] >= 0.98 * args.rate
        rows.append(
            {
                "what": "the source's endpoint mix",
                "target": f"≥ {args.rate:,.0f} req/s, every P95 inside its target, 0 errors",
                "measured": f"{paced['rps']:,.0f} req/s paced; "
                f"P95 {'all inside' if inside else 'NOT all inside'}; "
                f"{paced['errors']} errors; saturation {rep['mix_saturation']['rps']:,.0f} req/s",
                "ok": sustained and inside and paced["errors"] == 0,
            }
        )
    floor = {row["endpoint"]: row for row in rep.get("floor", {}).get("endpoints", [])}
    labels = {
        "detail": "warm `GET /api/videos/{id}`",
        "plans": "`GET /api/subscriptions/plans`",
        "feed": "`GET /api/videos` (20 items, warm)",
    }
    for name, label in labels.items():
        row = floor.get(name)
        if not row:
            continue
        extra = f", P99 {row['app_p99_ms']:.0f} ms" if name == "detail" else ""
        ok = row["ok"] and (name != "detail" or row["app_p99_ms"] <= 250)
        rows.append(
            {
                "what": label,
                "target": f"≥ {100 * row['target']:.0f} % of the floor"
                + (", P99 ≤ 250 ms" if name == "detail" else ""),
                "measured": f"{100 * row['ratio']:.0f} % "
                f"({row['app_rps']:,.0f} / {row['floor_rps']:,.0f} req/s){extra}",
                "ok": ok,
            }
        )
    for name, limit in (("stream", 200), ("create", 400)):
        if paced and name in paced["endpoints"]:
            p95 = paced["endpoints"][name]["p95_ms"]
            rows.append(
                {
                    "what": f"`{load.PATHS[name]}`",
                    "target": f"P95 ≤ {limit} ms at the mix load",
                    "measured": f"P95 {p95:.1f} ms at {paced['rps']:,.0f} req/s",
                    "ok": p95 <= limit,
                }
            )
    if "queries_check" in rep:
        rows.append(
            {
                "what": "queries per request",
                "target": "constant in page size; 0 for warm detail and plans",
                "measured": rep["queries_check"],
                "ok": rep["queries_ok"],
            }
        )
    login = rep.get("login")
    if login:
        two = next((row for row in login["levels"] if row["concurrency"] == 2), None)
        if two:
            rows.append(
                {
                    "what": "`POST /api/auth/login` (login benchmark, 2 concurrent = the cores)",
                    "target": "P50 ≤ 150 ms, P95 ≤ 300 ms",
                    "measured": f"P50 {two['p50_ms']:.0f} ms, P95 {two['p95_ms']:.0f} ms, "
                    f"{two['rps']:.1f} logins/s",
                    "ok": two["ok"],
                }
            )
    return rows


def queries_check(app: Server, requests: Requests) -> tuple[str, bool]:
    """SQL per request for warm detail and plans (should be 0) and for feed pages of 5 and 50 rows
    when not cached (should be the same), from the app's own histogram."""
    results: dict[str, float] = {}

    def per_request(path: str, view: str, repeat: int) -> float:
        before = app.scrape()
        for _ in range(repeat):
            app.get(path)
        after = app.scrape()
        key = (("method", "GET"), ("view", view))
        count = after.get(("http_request_db_queries_count", key), 0) - before.get(
            ("http_request_db_queries_count", key), 0
        )
        total = after.get(("http_request_db_queries_sum", key), 0) - before.get(
            ("http_request_db_queries_sum", key), 0
        )
        return total / count if count else float("nan")

    video = requests.catalogue.visible[0]
    for _ in range(6):  # every worker has it in its L1
        app.get(f"/api/videos/{video}")
        app.get("/api/subscriptions/plans")
    results["detail (warm)"] = per_request(f"/api/videos/{video}", "api/videos/<str:video_id>", 20)
    results["plans (warm)"] = per_request("/api/subscriptions/plans", "api/subscriptions/plans", 20)
    # Pages never asked for before: every one is a cache miss, read from the database (the count,
    # the page, and the owners that are not cached yet, in one query whatever their number).
    feed = {}
    for limit, page in ((5, 901), (20, 227), (50, 91), (100, 46)):
        feed[limit] = per_request(f"/api/videos?limit={limit}&page={page}", "api/videos", 1)
        results[f"feed, {limit} per page (cold)"] = feed[limit]
    ok = results["detail (warm)"] == 0 and results["plans (warm)"] == 0 and max(feed.values()) <= 3
    text = "; ".join(f"{name} {value:.2f}" for name, value in results.items())
    return text, ok


def update_docs(markdown: str, begin: str = BEGIN, end: str = END) -> None:
    text = DOC.read_text() if DOC.exists() else f"# Performance\n\n{begin}\n{end}\n"
    if begin not in text or end not in text:
        text += f"\n{begin}\n{end}\n"
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    DOC.write_text(f"{head}{begin}\n{markdown}\n{end}{tail}")
    print(f"docs: wrote the figures into {DOC.relative_to(ROOT)}")


def main() -> None:
    args = parse_args()
    started = time.monotonic()
    services = Services(
        database=args.database, redis=args.redis, broker=args.broker or next_database(args.redis)
    )
    replica = not args.no_replica
    stack.ensure_services(services, replica=replica)
    wrk = stack.ensure_wrk()
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out_dir = Path(args.out) / stamp
    workdir = Path(tempfile.mkdtemp(prefix="vp-perf-run-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    rep: dict[str, Any] = {
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m bench.perf " + " ".join(sys.argv[1:]),
        "machine": machine_info(wrk, services),
    }
    s3 = stack.s3_bucket(services, "vp-perf")
    overrides = {
        key: value
        for key, value in (("GUNICORN_WORKERS", args.workers), ("GUNICORN_THREADS", args.threads))
        if value
    }
    env = stack.production_env(services, replica=replica, s3=s3, overrides=overrides)
    stack.create_database(services)
    print("migrate: through the direct (unpooled) alias")
    stack.manage(env, "migrate", "--no-input", "-v0")
    spec = seed.SeedSpec()
    seed.seed(services.url(services.primary), services.database, spec, password_hash=argon2_hash(env))
    reset_run_state(services)
    if replica:
        stack.wait_for_replica(services)
    catalogue = Catalogue.from_spec(spec)
    requests = Requests(catalogue)
    config = _gunicorn_config(env)
    rep["server"] = {
        **config,
        "databases": (
            "PostgreSQL primary through PgBouncer (transaction mode) + the streaming replica"
            if replica
            else "PostgreSQL primary through PgBouncer (no replica)"
        )
        + ", Redis"
        + (", S3-compatible storage" if s3 else ", filesystem storage"),
    }
    app = Server("app", env)
    floor_env = dict(env, PERF_FLOOR_RESPONSES=str(workdir / "floor.json"))
    floor = Server("floor", floor_env, app="bench.perf.floor:application")
    try:
        print(
            f"app: gunicorn {config['workers']} workers x {config['threads']} threads"
            f" on {app.start().base_url}"
        )
        print(f"steady state: the mix, closed loop, for {args.warmup:.0f} s (req/s per 5 s)")
        rep["steady"] = ramp.steady_curve(
            lambda server, lines, label, seconds: measure(server, wrk, lines, label, seconds, args, workdir),
            app,
            requests,
            args.warmup,
            5.0,
        )
        print("  " + " ".join(f"{row['rps']:,.0f}" for row in rep["steady"]["curve"]))
        print(f"  steady state {rep['steady']['steady_rps']:,.0f} req/s")
        for name in ("detail", "plans", "feed"):
            measure(app, wrk, endpoint_lines(requests, name), f"warm-{name}", 2, args, workdir)
        responses = {
            "detail": capture(app, f"/api/videos/{catalogue.visible[0]}"),
            "plans": capture(app, "/api/subscriptions/plans"),
            "feed": capture(app, "/api/videos"),
            "health": capture(app, "/health"),
            **{name: capture_line(app, requests.one(name)) for name in ("stream", "login", "create")},
        }
        (workdir / "floor.json").write_text(json.dumps(responses))
        rep["response_bytes"] = {name: value["bytes"] for name, value in responses.items()}
        floor.start()
        print(f"floor: bare WSGI app on {floor.base_url}")
        floor_mix = measure(floor, wrk, requests.mix(30_000), "floor-mix", 10, args, workdir)
        rep["steady"]["floor_rps"] = round(floor_mix.rps, 1)
        print(f"  the floor under the mix: {floor_mix.rps:,.0f} req/s")
        if args.logins_only:
            print("login benchmark")
            rep["login"] = login_benchmark(app, wrk, requests, args, workdir, env)
            print("readers beside a burst of logins: shed, waiting, and without the bound on hashes")
            rep["logins_beside_readers"] = logins_beside_readers(env, app, wrk, requests, args, workdir)
        if not (args.ramp_only or args.logins_only):
            print(f"mix, paced at {args.rate:,.0f} req/s for {args.seconds:.0f} s")
            paced = measure(
                app, wrk, requests.mix(60_000), "mix-paced", args.seconds, args, workdir, rate=args.rate
            )
            rep["mix_paced"] = paced.as_dict()
            print(f"  {paced.rps:,.0f} req/s, {paced.errors} errors")
            print(f"mix, closed loop ({args.connections} connections) for {args.seconds:.0f} s")
            before = app.scrape()
            xact_before = {
                "primary": stack.xact_counts(services.url(services.primary), services.database),
                "replica": stack.xact_counts(services.url(services.replica), services.database)
                if replica
                else 0.0,
            }
            saturation = measure(
                app, wrk, requests.mix(60_000), "mix-saturation", args.seconds, args, workdir
            )
            time.sleep(1.5)  # PostgreSQL publishes its statistics at most every second
            after = app.scrape()
            xact_after = {
                "primary": stack.xact_counts(services.url(services.primary), services.database),
                "replica": stack.xact_counts(services.url(services.replica), services.database)
                if replica
                else 0.0,
            }
            rep["mix_saturation"] = saturation.as_dict()
            print(f"  {saturation.rps:,.0f} req/s, {saturation.errors} errors")
            rep["during_mix"] = during_mix(
                before,
                after,
                saturation.seconds,
                {key: xact_after[key] - xact_before[key] for key in xact_after},
            )
            if args.mix_only:
                rep["queries_check"], rep["queries_ok"] = queries_check(app, requests)
                floor.stop()
                (out_dir / "report.json").write_text(json.dumps(rep, indent=2, default=str))
                print(json.dumps(rep["during_mix"]["database"], indent=2))
                print(f"report: {out_dir / 'report.json'}")
                return
        if not args.logins_only:
            rep["ramps"] = new_pod_ramps(env, app, wrk, requests, args, workdir)
            rep["ramp_floor_rps"] = round(
                measure(floor, wrk, requests.mix(30_000), "floor-mix-ramp", 10, args, workdir).rps, 1
            )
            print(f"  the floor under the mix: {rep['ramp_floor_rps']:,.0f} req/s")
            print("a fresh process's first requests: CPU per request (one thread, thread CPU time)")
            rep["cold_start"] = cold_start(env, requests, workdir, count=6000 if args.quick else 14_000)
        if not (args.ramp_only or args.logins_only):
            rep["queries_check"], rep["queries_ok"] = queries_check(app, requests)
            print(f"queries per request: {rep['queries_check']}")

            print("floor vs app")
            rep["floor"] = floor_comparison(app, floor, wrk, requests, args, workdir)

            print("CPU per request: the mix replayed in one process under cProfile")
            rep["cpu_profile"] = cpu_profile(env, requests, workdir)
            for name, row in rep["cpu_profile"].get("endpoints", {}).items():
                print(
                    f"  {name:<7} {row['cpu_ms']:6.2f} ms CPU per request"
                    f" ({row['share_percent']:4.1f} % of the mix's CPU)"
                )

            print("login benchmark")
            rep["login"] = login_benchmark(app, wrk, requests, args, workdir, env)
            print("readers beside a burst of logins: shed, waiting, and without the bound on hashes")
            rep["logins_beside_readers"] = logins_beside_readers(env, app, wrk, requests, args, workdir)

            if not args.no_profile and profiles.available():
                seconds = 15 if not args.quick else 8
                print(f"profile: py-spy on {len(app.worker_pids())} workers for {seconds} s of the mix")
                import threading

                files: list[Path] = []
                thread = threading.Thread(
                    target=lambda: files.extend(
                        profiles.record(app.worker_pids(), seconds, workdir / "profiles")
                    )
                )
                thread.start()
                measure(app, wrk, requests.mix(30_000), "mix-profiled", seconds + 2, args, workdir)
                thread.join()
                rep["profile"] = profiles.summarise(files)
                for row in rep["profile"]["areas"][:6]:
                    print(f"  {row['percent']:5.1f} %  {row['area']}")
    finally:
        app.stop()
    try:
        if args.ablations and not (args.ramp_only or args.logins_only):
            rep["ablations"] = ablations(env, floor, wrk, requests, args, workdir)
    finally:
        floor.stop()
    rep["machine"]["load_after"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    rep["duration_s"] = time.monotonic() - started
    rep["noise"] = noise_note(rep)
    rep["targets"] = targets(rep, args)
    rep["capacity"] = capacity(rep)
    markdown = report.markdown(rep)
    (out_dir / "report.json").write_text(json.dumps(rep, indent=2, default=str))
    (out_dir / "report.md").write_text(markdown + "\n")
    plotted = ramp.plot(rep, out_dir / "throughput.png")
    if plotted:
        print(f"plot: {plotted}")
    print()
    print(markdown)
    print(f"\nreport: {out_dir / 'report.md'} and report.json")
    if args.update_docs:
        if args.ramp_only:
            update_docs(markdown, RAMP_BEGIN, RAMP_END)
        else:
            update_docs(markdown)


def capacity(rep: dict[str, Any]) -> dict[str, Any]:
    """The mix's throughput per core of the server: what a pod of N cores serves when the
    database, Redis and the load generator run elsewhere (here they share the machine)."""
    sat = rep.get("mix_saturation")
    if not sat or not sat["cpu"]["server_cores"]:
        return {}
    per_core = sat["rps"] / sat["cpu"]["server_cores"]
    return {
        "mix_rps": sat["rps"],
        "server_cores": sat["cpu"]["server_cores"],
        "rps_per_server_core": per_core,
        "pod_2_cores_rps": 2 * per_core,
        "cpu_millicores_per_1000_rps": 1000 * 1000 / per_core,
    }


def noise_note(rep: dict[str, Any]) -> str:
    parts = []
    for row in rep.get("floor", {}).get("endpoints", []):
        if row["ratios"]:
            parts.append(
                f"{row['endpoint']} ratio {min(row['ratios']) * 100:.0f}-{max(row['ratios']) * 100:.0f} %"
                f" over {len(row['ratios'])} rounds"
            )
    machine = rep["machine"]
    parts.append(f"load average {machine['load_before']} before and {machine.get('load_after', '?')} after")
    sat = rep.get("mix_saturation")
    if sat:
        cpu = sat["cpu"]
        other = (
            (cpu["machine_busy_cores"] or 0) - (cpu["server_cores"] or 0) - (cpu["load_generator_cores"] or 0)
        )
        parts.append(
            f"during the saturation run {other:.2f} cores went to PostgreSQL, PgBouncer, Redis"
            " and other processes"
        )
    return "; ".join(parts) + "."


def _gunicorn_config(env: dict[str, str]) -> dict[str, Any]:
    code = (
        "import json, runpy; c = runpy.run_path('gunicorn.conf.py'); "
        "print(json.dumps({k: c[k] for k in ('worker_class', 'workers', 'threads')}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


if __name__ == "__main__":
    main()
