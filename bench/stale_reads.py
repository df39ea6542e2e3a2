"""Stale-read checker: read-your-writes and bounded staleness across two gunicorn pods.

Two gunicorn processes ("pods" A and B) serve one throwaway database through PgBouncer with the
streaming replica, sharing Redis (pins, cache tiers, invalidation feed). For a bounded time:

- writers (each a user owning one video) PATCH their video's title with an increasing counter
  through pod A and, at once, read it back through pod B with the same token: the detail
  (cached path) and their own video list (uncached, routed by the data layer);
- readers (anonymous) read the writers' videos through both pods and log what they saw;
- a probe measures commit -> replay on the standby (write, read the position, poll the standby).

Offline it checks:
- read-your-writes violations: a writer's read-back older than the write it just made;
- stale reads: a reader saw a counter older than a write that had completed more than
  ``--bound`` seconds before the read started (default 1 s: the invalidation feed's lease, the
  bound of cached reads), and more than ``--lag-bound`` (15 s: ``DB_REPLICA_MAX_LAG`` +
  ``DB_REPLICA_CHECK_INTERVAL``, the bound of reads that need no position, e.g. anonymous
  readers with the cache tiers off).

``--pause-at S --pause-for D`` pauses WAL replay on the standby (``pg_wal_replay_pause()``)
for D seconds starting S seconds into the run, and always resumes it. Per second it prints the
replica share of the pods' SQL reads (their /metrics), so the drop and the recovery show.

    .venv/bin/python -m bench.stale_reads [--seconds 20] [--writers 4] [--readers 4]
        [--pause-at 6 --pause-for 5] [--bound 1.0]

It prints figures and asserts nothing about timings; the exit status is 1 if it found a
read-your-writes violation or a stale read beyond the bound.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis

from bench.data_layer import (
    GUNICORN,
    PASSWORD,
    PYTHON,
    ROOT,
    SEED,
    Servers,
    base_environment,
    call,
    free_port,
    manage,
    psql,
    scrape,
    wait_for_replica,
)


@dataclass
class Log:
    # (video id, counter, completed at) per write.
    writes: list[tuple[str, int, float]] = field(default_factory=list)
    # (video id, counter written, counter read back, what) per read-back.
    readbacks: list[tuple[str, int, int, str]] = field(default_factory=list)
    # (video id, started at, counter seen, pod) per reader read.
    reads: list[tuple[str, float, int, str]] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    lock: threading.Lock = field(default_factory=threading.Lock)


def counter_of(title: Any) -> int:
    try:
        return int(str(title).rsplit(" ", 1)[1])
    except (IndexError, ValueError):
        return -1


def start_pod(env: dict[str, str], threads: int, metrics_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    pod = subprocess.Popen(
        [GUNICORN, "-c", "gunicorn.conf.py"],
        cwd=ROOT,
        env={
            **env,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "GUNICORN_WORKERS": "1",
            "GUNICORN_THREADS": str(threads),
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(OSError):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            if call(conn, "GET", "/health", None)[0] == 200:
                return pod, port
        if time.monotonic() > deadline:
            raise SystemExit("gunicorn did not start")
        time.sleep(0.2)


def writer(
    port_a: int, port_b: int, token: str, user_id: str, video_id: str, deadline: float, log: Log
) -> None:
    a = http.client.HTTPConnection("127.0.0.1", port_a, timeout=30)
    b = http.client.HTTPConnection("127.0.0.1", port_b, timeout=30)
    counter = 0
    while time.monotonic() < deadline:
        counter += 1
        status, _ = call(a, "PATCH", f"/api/videos/{video_id}", token, {"title": f"title {counter}"})
        if status != 200:
            with log.lock:
                log.errors[f"PATCH {status}"] += 1
            counter -= 1
            continue
        done = time.monotonic()
        status, body = call(b, "GET", f"/api/videos/{video_id}", token)
        seen = counter_of(body.get("title")) if status == 200 and body else -1
        status_list, listed = call(b, "GET", f"/api/users/{user_id}/videos", token)
        items = (listed or {}).get("results") or (listed or {}).get("data") or []
        in_list = [counter_of(item.get("title")) for item in items if item.get("id") == video_id]
        with log.lock:
            log.writes.append((video_id, counter, done))
            log.readbacks.append((video_id, counter, seen, "detail"))
            log.readbacks.append((video_id, counter, in_list[0] if in_list else -1, "own list"))
            if status != 200 or status_list != 200:
                log.errors[f"read-back {status}/{status_list}"] += 1
    a.close()
    b.close()


def reader(ports: list[tuple[str, int]], video_ids: list[str], deadline: float, seed: int, log: Log) -> None:
    rng = random.Random(seed)
    conns = {name: http.client.HTTPConnection("127.0.0.1", port, timeout=30) for name, port in ports}
    while time.monotonic() < deadline:
        name = rng.choice(list(conns))
        video_id = rng.choice(video_ids)
        started = time.monotonic()
        status, body = call(conns[name], "GET", f"/api/videos/{video_id}", None)
        if status == 200 and body:
            with log.lock:
                log.reads.append((video_id, started, counter_of(body.get("title")), name))
        else:
            with log.lock:
                log.errors[f"read {status}"] += 1


def replay_probe(primary: str, replica: str, deadline: float, delays: list[float]) -> None:
    """Commit -> replayed on the standby, 10 times a second (a side table of the bench database)."""
    with (
        psycopg.connect(primary, autocommit=True) as writer_conn,
        psycopg.connect(replica, autocommit=True) as std,
    ):
        writer_conn.execute("CREATE TABLE IF NOT EXISTS bench_probe (n int)")
        while time.monotonic() < deadline:
            started = time.monotonic()
            writer_conn.execute("INSERT INTO bench_probe VALUES (1)")
            row = writer_conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()
            lsn = row[0] if row else None
            while time.monotonic() - started < 30:
                replayed = std.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()
                if replayed and replayed[0]:
                    delays.append(time.monotonic() - started)
                    break
                time.sleep(0.0005)
            time.sleep(max(0.0, 0.1 - (time.monotonic() - started)))


def pause_replay(replica: str, at: float, seconds: float, stop: threading.Event, marks: list[str]) -> None:
    if stop.wait(at):
        return
    with psycopg.connect(replica, autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
        marks.append(f"replay paused at {at:.1f} s")
        try:
            stop.wait(seconds)
        finally:
            conn.execute("SELECT pg_wal_replay_resume()")
            marks.append(f"replay resumed at {at + seconds:.1f} s")


def reads_by_alias(samples: dict[Any, float]) -> dict[str, float]:
    found: dict[str, float] = defaultdict(float)
    for (name, labels), value in samples.items():
        if name == "db_queries_total" and dict(labels).get("kind") == "read":
            found[dict(labels)["alias"]] += value
    return found


def routed(samples: dict[Any, float]) -> dict[tuple[str, str], float]:
    return {
        (dict(labels)["alias"], dict(labels)["reason"]): value
        for (name, labels), value in samples.items()
        if name == "db_reads_routed_total"
    }


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4, help="threads of each pod's one worker")
    parser.add_argument("--pause-at", type=float, default=None, help="pause replay this far into the run")
    parser.add_argument("--pause-for", type=float, default=5.0)
    parser.add_argument(
        "--bound", type=float, default=1.0, help="seconds a cached read may lag a write (feed lease)"
    )
    parser.add_argument(
        "--lag-bound",
        type=float,
        default=15.0,
        help="seconds a read that needs no position may lag (DB_REPLICA_MAX_LAG + DB_REPLICA_CHECK_INTERVAL)",
    )
    parser.add_argument("--no-cache-tiers", dest="cache_tiers", action="store_false")
    parser.add_argument(
        "--primary",
        default=os.environ.get("BENCH_PRIMARY", "postgres://videoplatform:videoplatform@127.0.0.1:5432"),
    )
    parser.add_argument(
        "--pgbouncer",
        default=os.environ.get("BENCH_PGBOUNCER", "postgres://videoplatform:videoplatform@127.0.0.1:6432"),
    )
    parser.add_argument(
        "--replica",
        default=os.environ.get("BENCH_REPLICA", "postgres://videoplatform:videoplatform@127.0.0.1:5433"),
    )
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"))
    parser.add_argument("--database", default="vp_db_bench_stale_reads")
    args = parser.parse_args()
    servers = Servers(args.primary, args.pgbouncer, args.replica, args.redis)
    database = args.database
    env = base_environment(servers, database, cache_tiers=args.cache_tiers)
    # One address for every client: the API throttles would count them as one.
    env.update(API_THROTTLE_ANON_RATE="100000000/min", API_THROTTLE_USER_RATE="100000000/min")

    def drop_database() -> None:
        with contextlib.suppress(psycopg.Error):
            psql(servers.url(servers.pgbouncer, "pgbouncer"), f"RECONNECT {database}", admin=True)
        psql(servers.url(servers.primary, "postgres"), f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    drop_database()
    psql(servers.url(servers.primary, "postgres"), f'CREATE DATABASE "{database}"')
    redis.Redis.from_url(servers.redis).flushdb()
    pods: list[subprocess.Popen[bytes]] = []
    metrics_dirs = [Path(tempfile.mkdtemp(prefix="vp-stale-metrics-")) for _ in range(2)]
    stop = threading.Event()
    try:
        manage(env, "migrate", "-v0")
        seeded = subprocess.run(
            [PYTHON, "manage.py", "shell", "--no-imports", "-c", SEED],
            cwd=ROOT,
            env={
                **env,
                "BENCH_USERS": str(args.writers + 2),
                "BENCH_VIDEOS": "20",
                "BENCH_PASSWORD": PASSWORD,
            },
            capture_output=True,
            text=True,
            timeout=300,
        )
        if seeded.returncode != 0:
            raise SystemExit(f"seeding failed:\n{seeded.stderr[-3000:]}")
        wait_for_replica(servers, database)
        (pod_a, port_a), (pod_b, port_b) = (start_pod(env, args.threads, d) for d in metrics_dirs)
        pods += [pod_a, pod_b]

        conn = http.client.HTTPConnection("127.0.0.1", port_a, timeout=30)
        writers = []
        for n in range(args.writers):
            status, body = call(
                conn, "POST", "/api/auth/login", None, {"username": f"bench{n}", "password": PASSWORD}
            )
            if status != 200:
                raise SystemExit(f"login failed: {status} {body}")
            token = body["token"]
            status, video = call(
                conn, "POST", "/api/videos", token, {"title": "title 0", "privacy": "public"}
            )
            if status != 201:
                raise SystemExit(f"create failed: {status} {video}")
            user_id = psql(
                servers.url(servers.primary, database),
                f"SELECT id FROM accounts_user WHERE username = 'bench{n}'",
            )[0]["id"]
            writers.append((token, user_id, video["id"]))
        conn.close()
        wait_for_replica(servers, database)

        log = Log()
        delays: list[float] = []
        marks: list[str] = []
        timeline: list[tuple[float, dict[str, float]]] = []
        replica_url = servers.url(servers.replica, database)
        started = time.monotonic()
        deadline = started + args.seconds
        threads = [
            threading.Thread(target=writer, args=(port_a, port_b, token, user_id, video_id, deadline, log))
            for token, user_id, video_id in writers
        ]
        ids = [video_id for _, _, video_id in writers]
        threads += [
            threading.Thread(target=reader, args=([("A", port_a), ("B", port_b)], ids, deadline, n, log))
            for n in range(args.readers)
        ]
        threads.append(
            threading.Thread(
                target=replay_probe,
                args=(servers.url(servers.primary, database), replica_url, deadline, delays),
            )
        )
        pauser = None
        if args.pause_at is not None:
            pauser = threading.Thread(
                target=pause_replay, args=(replica_url, args.pause_at, args.pause_for, stop, marks)
            )
            pauser.start()
        before = [scrape(port_a), scrape(port_b)]
        for thread in threads:
            thread.start()
        previous = before
        while time.monotonic() < deadline:
            time.sleep(1.0)
            now = [scrape(port_a), scrape(port_b)]
            second: dict[str, float] = defaultdict(float)
            for after, earlier in zip(now, previous, strict=True):
                for alias, value in reads_by_alias(after).items():
                    second[alias] += value - reads_by_alias(earlier).get(alias, 0.0)
            timeline.append((time.monotonic() - started, dict(second)))
            previous = now
        for thread in threads:
            thread.join(timeout=60)
        stop.set()
        if pauser is not None:
            pauser.join(timeout=30)
        final = [scrape(port_a), scrape(port_b)]
        failed = report(args, log, delays, marks, timeline, before, final)
    finally:
        stop.set()
        with contextlib.suppress(psycopg.Error):  # whatever happened: replay runs again
            psql(servers.url(servers.replica, "postgres"), "SELECT pg_wal_replay_resume()")
        for pod in pods:
            pod.send_signal(signal.SIGTERM)
            try:
                pod.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pod.kill()
        for directory in metrics_dirs:
            shutil.rmtree(directory, ignore_errors=True)
        drop_database()
    sys.exit(1 if failed else 0)


def report(
    args: argparse.Namespace,
    log: Log,
    delays: list[float],
    marks: list[str],
    timeline: list[tuple[float, dict[str, float]]],
    before: list[dict[Any, float]],
    after: list[dict[Any, float]],
) -> bool:
    print(
        f"\n{args.seconds:.0f} s, {args.writers} writers, {args.readers} readers, cache tiers "
        f"{'on' if args.cache_tiers else 'off'}; " + ("; ".join(marks) or "replay not paused")
    )
    violations = [(v, w, r, what) for v, w, r, what in log.readbacks if r < w]
    by_what: dict[str, int] = defaultdict(int)
    for *_, what in violations:
        by_what[what] += 1
    print(
        f"writes: {len(log.writes)}; read-backs: {len(log.readbacks)}; "
        f"read-your-writes violations: {len(violations)} {dict(by_what) or ''}"
    )
    # Stale reads: a reader saw a counter older than one whose write completed > bound earlier.
    completed: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for video_id, counter, done in log.writes:
        completed[video_id].append((done, counter))
    lag_bound = args.lag_bound
    stale = beyond_lag_bound = 0
    worst = 0.0
    for video_id, read_at, seen, _ in log.reads:
        newer = [done for done, counter in completed[video_id] if counter > seen and done < read_at]
        if newer:
            age = read_at - min(newer)
            worst = max(worst, age)
            stale += age > args.bound
            beyond_lag_bound += age > lag_bound
    print(
        f"reader reads: {len(log.reads)}; older than a write completed more than {args.bound:g} s earlier: "
        f"{stale}; more than {lag_bound:g} s (DB_REPLICA_MAX_LAG + DB_REPLICA_CHECK_INTERVAL): "
        f"{beyond_lag_bound}; largest lag behind a completed write: {worst * 1000:.1f} ms"
    )
    if log.errors:
        print(f"errors: {dict(log.errors)}")
    if delays:
        print(
            f"commit -> replayed on the standby: n={len(delays)}, "
            f"P50 {percentile(delays, 0.5) * 1000:.1f} ms, P95 {percentile(delays, 0.95) * 1000:.1f} ms, "
            f"max {max(delays) * 1000:.0f} ms"
        )
    reads: dict[str, float] = defaultdict(float)
    reasons: dict[tuple[str, str], float] = defaultdict(float)
    probes = 0.0
    for end, start in zip(after, before, strict=True):
        for alias, value in reads_by_alias(end).items():
            reads[alias] += value - reads_by_alias(start).get(alias, 0.0)
        for key, value in routed(end).items():
            reasons[key] += value - routed(start).get(key, 0.0)
        probes += sum(v for (n, _), v in end.items() if n == "db_replica_lsn_probes_total") - sum(
            v for (n, _), v in start.items() if n == "db_replica_lsn_probes_total"
        )
    total = sum(reads.values()) or 1.0
    print(
        f"SQL reads: {int(total)}, replica share {reads.get('replica1', 0.0) / total:.1%}; "
        f"position probes {probes / args.seconds:.1f}/s"
    )
    print(
        "routing: "
        + ", ".join(f"{alias}/{reason} {int(v)}" for (alias, reason), v in sorted(reasons.items()) if v)
    )
    print(
        "replica share of SQL reads per second: "
        + " ".join(f"{(s.get('replica1', 0.0) / (sum(s.values()) or 1)):.0%}" for _, s in timeline)
    )
    catchup = [
        (dict(labels).get("le"), value)
        for end in after
        for (name, labels), value in end.items()
        if name == "db_replica_catchup_seconds_bucket"
    ]
    if catchup:
        buckets: dict[str, float] = defaultdict(float)
        for le, value in catchup:
            buckets[str(le)] += value
        count = buckets.get("+Inf", 0.0)
        if count:
            p50 = next(
                le for le, v in sorted(((float(k), v) for k, v in buckets.items())) if v >= count * 0.5
            )
            p95 = next(
                le for le, v in sorted(((float(k), v) for k, v in buckets.items())) if v >= count * 0.95
            )
            print(
                f"catch-up (first read that found a replica behind -> replica replayed it): n={int(count)}, "
                f"P50 <= {p50 * 1000:g} ms, P95 <= {p95 * 1000:g} ms"
            )
    # Reads that need no position (anonymous, uncached) are bounded by the lag gate; cached ones
    # by the feed's lease.
    return bool(violations) or beyond_lag_bound > 0 or (args.cache_tiers and stale > 0)


if __name__ == "__main__":
    main()
