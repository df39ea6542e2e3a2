"""Benchmark of the data layer: a mixed read/write API load on a real gunicorn, through
PgBouncer (transaction mode) with the streaming replica.

It creates a throwaway database, migrates it (through the ``direct`` alias), seeds users,
videos and plans, starts gunicorn with the production settings and runs client threads for a
bounded time. Each client is a user with a bearer token who browses (feed, video pages, user
pages, plans); a few of them (the writers) also create and rename videos half of the time, and
read on right after (their reads are then pinned to the primary: read-your-writes).

It prints, from the application's own /metrics and from PgBouncer's SHOW STATS / SHOW POOLS:
- the share of reads served by the replica vs the primary, and why reads went to the primary;
- per endpoint: requests, client-side latency (P50/P95), SQL queries per request and DB time;
- PgBouncer pool efficiency (definition in docs/data-layer.md):
    efficiency  = busy server time / held server time
                = Δtotal_xact_time / (mean server connections held x wall time)
    wait share  = Δtotal_wait_time / (Δtotal_xact_time + Δtotal_wait_time)
    multiplexing = mean client connections / mean server connections held

It prints figures and asserts nothing about timings. Usage:

    .venv/bin/python -m bench.data_layer [--seconds 20] [--clients 8] [--writers 2]
        [--workers 2] [--no-cache-tiers]

Servers default to the local services (primary :5432, PgBouncer :6432, replica :5433,
Redis :6379/12, which it flushes); see --help.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import redis
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
GUNICORN = str(Path(sys.executable).parent / "gunicorn")
PASSWORD = "bench password, not a secret"

SEED = """
import os
from django.contrib.auth.hashers import make_password
from accounts.models import User
from subscriptions.models import Plan
from videos.models import Video
import random

users_count, videos_count = int(os.environ["BENCH_USERS"]), int(os.environ["BENCH_VIDEOS"])
password = os.environ["BENCH_PASSWORD"]
hashed = make_password(password)
users = User.objects.bulk_create(
    [User(username=f"bench{n}", email=f"bench{n}@example.com", password=hashed) for n in range(users_count)]
)
rng = random.Random(7)
Video.objects.bulk_create(
    [
        Video(owner=rng.choice(users), title=f"Bench video {n}", status=Video.Status.READY, tags=["bench"])
        for n in range(videos_count)
    ]
)
if not Plan.objects.exists():
    Plan.objects.create(code="bench", name="Bench", price=1, currency="USD", max_resolution=720)
print(len(users), Video.objects.count())
"""

# (name, weight): what a client does next.
READS = [("feed", 30), ("video", 30), ("user_videos", 15), ("plans", 10)]
WRITES = [("create", 45), ("rename", 55)]


@dataclass
class Servers:
    primary: str
    pgbouncer: str
    replica: str
    redis: str

    def url(self, base: str, database: str) -> str:
        return base.rstrip("/") + "/" + database


@dataclass
class ClientResult:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)


def psql(url: str, sql: str, *, admin: bool = False) -> list[dict[str, Any]]:
    parts = urlsplit(url)
    kwargs: dict[str, Any] = {
        "host": parts.hostname,
        "port": parts.port,
        "user": parts.username,
        "password": parts.password,
        "dbname": parts.path.lstrip("/") or "postgres",
        "autocommit": True,
        "connect_timeout": 5,
        "prepare_threshold": None,
    }
    if admin:  # PgBouncer's console speaks the simple query protocol only
        kwargs["cursor_factory"] = psycopg.ClientCursor
    with psycopg.connect(**kwargs) as conn:
        cursor = conn.execute(sql)
        if cursor.description is None:
            return []
        columns = [column.name for column in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def pgbouncer_row(servers: Servers, what: str, database: str) -> dict[str, float]:
    """The bench database's row of SHOW STATS or SHOW POOLS, numbers only."""
    for row in psql(servers.url(servers.pgbouncer, "pgbouncer"), f"SHOW {what}", admin=True):
        if row.get("database") == database:
            return {
                key: float(value) for key, value in row.items() if isinstance(value, int | float | Decimal)
            }
    return {}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_environment(servers: Servers, database: str, *, cache_tiers: bool) -> dict[str, str]:
    drop = {
        "DATABASE_URL",
        "DATABASE_REPLICA_URLS",
        "DATABASE_SHARD_URLS",
        "DATABASE_DIRECT_URL",
        "REDIS_URL",
    }
    env = {key: value for key, value in os.environ.items() if key not in drop}
    env.update(
        DJANGO_SETTINGS_MODULE="settings.prod",
        SECRET_KEY=secrets.token_urlsafe(64),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SUBSCRIPTIONS_PAYMENT_GATEWAY="subscriptions.billing.ClosedPaymentGateway",
        UPLOADS_PER_DAY="1000000",  # the mix creates many videos from few accounts
        TRANSCODE_MINUTES_PER_DAY="1000000",
        SECURE_SSL_REDIRECT="false",
        DATABASE_URL=servers.url(servers.pgbouncer, database),
        DATABASE_POOLED="true",
        DATABASE_DIRECT_URL=servers.url(servers.primary, database),
        DATABASE_REPLICA_URLS=servers.url(servers.replica, database),
        REDIS_URL=servers.redis,
        CACHE_TIERS_ENABLED="true" if cache_tiers else "false",
        LOG_LEVEL="WARNING",
        GUNICORN_ACCESS_LOG="/dev/null",
        GUNICORN_LOG_LEVEL="warning",
        # Follow-up tasks are published, not run: the worker's queries are not the web's.
        CELERY_BROKER_URL="memory://",
    )
    return env


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    if result.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args[:1])} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def wait_for_replica(servers: Servers, database: str, timeout: float = 60) -> None:
    target = psql(servers.url(servers.primary, database), "SELECT pg_current_wal_lsn()::text AS lsn")[0][
        "lsn"
    ]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            rows = psql(
                servers.url(servers.replica, database),
                f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn AS caught_up",
            )
            if rows[0]["caught_up"]:
                return
        except psycopg.OperationalError:
            pass
        time.sleep(0.2)
    raise SystemExit("the replica did not catch up with the seeded data")


def call(
    conn: http.client.HTTPConnection, method: str, path: str, token: str | None, body: Any = None
) -> tuple[int, Any]:
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=payload, headers=headers)
    response = conn.getresponse()
    data = response.read()
    try:
        return response.status, json.loads(data) if data else None
    except ValueError:
        return response.status, None


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def delta(
    after: dict[Any, float], before: dict[Any, float], name: str
) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        labels: value - before.get((metric, labels), 0.0)
        for (metric, labels), value in after.items()
        if metric == name and value - before.get((metric, labels), 0.0) > 0
    }


def client_loop(
    port: int,
    token: str,
    user_ids: list[str],
    video_ids: list[str],
    write_share: float,
    deadline: float,
    seed: int,
    result: ClientResult,
) -> None:
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    mine: list[str] = []
    while time.monotonic() < deadline:
        if rng.random() < write_share:
            action = rng.choices([name for name, _ in WRITES], [w for _, w in WRITES])[0]
            if action == "rename" and not mine:
                action = "create"
        else:
            action = rng.choices([name for name, _ in READS], [w for _, w in READS])[0]
        started = time.perf_counter()
        try:
            if action == "feed":
                status, _ = call(conn, "GET", f"/api/videos?page={rng.randint(1, 5)}", token)
            elif action == "video":
                status, _ = call(conn, "GET", f"/api/videos/{rng.choice(video_ids)}", token)
            elif action == "user_videos":
                status, _ = call(conn, "GET", f"/api/users/{rng.choice(user_ids)}/videos", token)
            elif action == "plans":
                status, _ = call(conn, "GET", "/api/subscriptions/plans", token)
            elif action == "create":
                status, body = call(conn, "POST", "/api/videos", token, {"title": f"New {rng.random():.6f}"})
                if status == 201:
                    mine.append(body["id"])
            else:
                status, _ = call(
                    conn, "PATCH", f"/api/videos/{rng.choice(mine)}", token, {"title": "Renamed"}
                )
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            status = 0
        result.latencies[action].append(time.perf_counter() - started)
        result.statuses[(action, status)] += 1
    conn.close()


def sample_pools(
    servers: Servers, database: str, stop: threading.Event, samples: list[dict[str, float]]
) -> None:
    while not stop.is_set():
        try:
            row = pgbouncer_row(servers, "POOLS", database)
            if row:
                samples.append(row)
        except psycopg.Error:
            pass
        stop.wait(0.5)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def label(labels: tuple[tuple[str, str], ...], key: str) -> str:
    return dict(labels).get(key, "")


def report(
    args: argparse.Namespace,
    elapsed: float,
    results: list[ClientResult],
    before: dict[Any, float],
    after: dict[Any, float],
    stats_before: dict[str, float],
    stats_after: dict[str, float],
    pools: list[dict[str, float]],
) -> None:
    latencies: dict[str, list[float]] = defaultdict(list)
    statuses: Counter[tuple[str, int]] = Counter()
    for result in results:
        for action, values in result.latencies.items():
            latencies[action] += values
        statuses.update(result.statuses)
    total = sum(statuses.values())
    print(
        f"\n== load: {args.clients} clients ({args.writers} writing), "
        f"{args.workers} gunicorn workers x {args.threads} threads, "
        f"{elapsed:.1f} s, cache tiers {'on' if args.cache_tiers else 'off'}"
    )
    by_status: Counter[int] = Counter()
    for (_, code), count in statuses.items():
        by_status[code] += count
    shown = ", ".join(f"{code}: {count}" for code, count in sorted(by_status.items()))
    print(f"requests: {total} ({total / elapsed:.0f}/s); statuses: {shown}")

    reads = delta(after, before, "db_queries_total")
    read_by_alias = {label(k, "alias"): v for k, v in reads.items() if label(k, "kind") == "read"}
    write_by_alias = {label(k, "alias"): v for k, v in reads.items() if label(k, "kind") == "write"}
    all_reads = sum(read_by_alias.values()) or 1.0
    print("\n== SQL reads by database")
    for alias, count in sorted(read_by_alias.items()):
        print(f"  {alias:<10} {count:>8.0f}  {count / all_reads:6.1%}")
    replica_share = sum(v for a, v in read_by_alias.items() if a.startswith("replica")) / all_reads
    print(
        f"  replica share {replica_share:.1%}, primary share {1 - replica_share:.1%}; "
        f"writes: {sum(write_by_alias.values()):.0f}"
    )
    routed = delta(after, before, "db_reads_routed_total")
    print(
        "  routing decisions (alias, reason): "
        + ", ".join(
            f"{label(k, 'alias')}/{label(k, 'reason')} {v:.0f}"
            for k, v in sorted(routed.items(), key=lambda kv: -kv[1])
        )
    )

    print("\n== per endpoint")
    columns = f"{'requests':>8} {'p50 ms':>7} {'p95 ms':>7} {'queries/req':>11} {'DB ms/req':>9}"
    print(f"  {'method view':<44} {columns}")
    counts = delta(after, before, "http_request_db_queries_count")
    sums = delta(after, before, "http_request_db_queries_sum")
    db_sums = delta(after, before, "http_request_db_seconds_sum")
    action_for = {
        ("GET", "api/videos"): "feed",
        ("GET", "api/videos/<str:video_id>"): "video",
        ("GET", "api/users/<str:user_id>/videos"): "user_videos",
        ("GET", "api/subscriptions/plans"): "plans",
        ("POST", "api/videos"): "create",
        ("PATCH", "api/videos/<str:video_id>"): "rename",
    }
    for labels, count in sorted(counts.items(), key=lambda kv: -kv[1]):
        method, view = label(labels, "method"), label(labels, "view")
        if not view.startswith("api/"):
            continue
        action = action_for.get((method, view))
        values = latencies.get(action, []) if action else []
        print(
            f"  {method + ' ' + view:<44} {count:>8.0f} {percentile(values, 0.5) * 1000:>7.1f} "
            f"{percentile(values, 0.95) * 1000:>7.1f} {sums.get(labels, 0) / count:>11.2f} "
            f"{db_sums.get(labels, 0) / count * 1000:>9.2f}"
        )

    print("\n== PgBouncer (SHOW STATS / SHOW POOLS for the bench database)")
    xact = stats_after.get("total_xact_count", 0) - stats_before.get("total_xact_count", 0)
    xact_us = stats_after.get("total_xact_time", 0) - stats_before.get("total_xact_time", 0)
    wait_us = stats_after.get("total_wait_time", 0) - stats_before.get("total_wait_time", 0)
    held = [
        p.get("sv_active", 0)
        + p.get("sv_idle", 0)
        + p.get("sv_used", 0)
        + p.get("sv_tested", 0)
        + p.get("sv_login", 0)
        for p in pools
    ]
    clients = [p.get("cl_active", 0) + p.get("cl_waiting", 0) for p in pools]
    mean_held = statistics.fmean(held) if held else 0.0
    mean_clients = statistics.fmean(clients) if clients else 0.0
    efficiency = xact_us / (mean_held * elapsed * 1e6) if mean_held else float("nan")
    wait_share = wait_us / (xact_us + wait_us) if xact_us + wait_us else 0.0
    mean_xact_us = xact_us / max(xact, 1)
    print(f"  transactions {xact:.0f} ({xact / elapsed:.0f}/s), mean transaction {mean_xact_us:.0f} us")
    print(
        f"  server connections held: mean {mean_held:.1f}, max {max(held, default=0):.0f}; "
        f"client connections: mean {mean_clients:.1f}, max {max(clients, default=0):.0f}; "
        f"max cl_waiting {max((p.get('cl_waiting', 0) for p in pools), default=0):.0f}"
    )
    print(f"  pool efficiency (busy / held server time): {efficiency:.1%}")
    print(f"  wait share (client time waiting for a server): {wait_share:.2%}")
    multiplexing = mean_clients / mean_held if mean_held else float("nan")
    print(f"  multiplexing (clients per server connection): {multiplexing:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="load duration (default 20)")
    parser.add_argument("--clients", type=int, default=8, help="client threads (default 8)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker (default 4)")
    parser.add_argument("--writers", type=int, default=2, help="clients that also write (default 2)")
    parser.add_argument(
        "--write-share", type=float, default=0.5, help="share of a writer's requests that write (default 0.5)"
    )
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--videos", type=int, default=400)
    parser.add_argument(
        "--no-cache-tiers",
        dest="cache_tiers",
        action="store_false",
        help="switch the L1/L2 cache tiers off (every read reaches the database)",
    )
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
    parser.add_argument(
        "--redis",
        default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"),
        help="a Redis database the bench may flush (caches of an earlier run would answer otherwise)",
    )
    parser.add_argument("--database", default="vp_db_bench_data_layer")
    args = parser.parse_args()
    servers = Servers(args.primary, args.pgbouncer, args.replica, args.redis)
    database = args.database
    env = base_environment(servers, database, cache_tiers=args.cache_tiers)

    def drop_database() -> None:
        with contextlib.suppress(psycopg.Error):
            psql(servers.url(servers.pgbouncer, "pgbouncer"), f"RECONNECT {database}", admin=True)
        psql(servers.url(servers.primary, "postgres"), f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    drop_database()
    psql(servers.url(servers.primary, "postgres"), f'CREATE DATABASE "{database}"')
    redis.Redis.from_url(servers.redis).flushdb()
    gunicorn: subprocess.Popen[bytes] | None = None
    metrics_dir = Path(tempfile.mkdtemp(prefix="vp-bench-metrics-"))
    try:
        started = time.monotonic()
        manage(env, "migrate", "-v0")
        seeded = subprocess.run(
            [PYTHON, "manage.py", "shell", "--no-imports", "-c", SEED],
            cwd=ROOT,
            env={
                **env,
                "BENCH_USERS": str(args.users),
                "BENCH_VIDEOS": str(args.videos),
                "BENCH_PASSWORD": PASSWORD,
            },
            capture_output=True,
            text=True,
            timeout=300,
        )
        if seeded.returncode != 0:
            raise SystemExit(f"seeding failed:\n{seeded.stderr[-3000:]}")
        wait_for_replica(servers, database)
        print(
            f"database {database}: migrated (through the direct alias) and seeded "
            f"({args.users} users, {args.videos} videos) in {time.monotonic() - started:.1f} s"
        )

        port = free_port()
        gunicorn = subprocess.Popen(
            [GUNICORN, "-c", "gunicorn.conf.py"],
            cwd=ROOT,
            env={
                **env,
                "HOST": "127.0.0.1",
                "PORT": str(port),
                "GUNICORN_WORKERS": str(args.workers),
                "GUNICORN_THREADS": str(args.threads),
                "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                if call(conn, "GET", "/health", None)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("gunicorn did not start")
            time.sleep(0.2)

        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        tokens = []
        for n in range(args.clients):
            status, body = call(
                conn, "POST", "/api/auth/login", None, {"username": f"bench{n}", "password": PASSWORD}
            )
            if status != 200:
                raise SystemExit(f"login failed: {status} {body}")
            tokens.append(body["token"])
        conn.close()
        bench_db = servers.url(servers.primary, database)
        video_ids = [row["id"] for row in psql(bench_db, "SELECT id FROM videos_video")]
        user_ids = [row["id"] for row in psql(bench_db, "SELECT id FROM accounts_user")]

        before = scrape(port)
        stats_before = pgbouncer_row(servers, "STATS", database)
        pools: list[dict[str, float]] = []
        stop = threading.Event()
        sampler = threading.Thread(target=sample_pools, args=(servers, database, stop, pools), daemon=True)
        sampler.start()
        results = [ClientResult() for _ in range(args.clients)]
        load_started = time.monotonic()
        deadline = load_started + args.seconds
        threads = [
            threading.Thread(
                target=client_loop,
                args=(
                    port,
                    tokens[n],
                    user_ids,
                    video_ids,
                    args.write_share if n < args.writers else 0.0,
                    deadline,
                    n,
                    results[n],
                ),
            )
            for n in range(args.clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=args.seconds + 60)
        elapsed = time.monotonic() - load_started
        stop.set()
        sampler.join(timeout=5)
        stats_after = pgbouncer_row(servers, "STATS", database)
        after = scrape(port)
        report(args, elapsed, results, before, after, stats_before, stats_after, pools)
    finally:
        if gunicorn is not None:
            gunicorn.send_signal(signal.SIGTERM)
            try:
                gunicorn.wait(timeout=30)
            except subprocess.TimeoutExpired:
                gunicorn.kill()
        shutil.rmtree(metrics_dir, ignore_errors=True)
        drop_database()


if __name__ == "__main__":
    main()
