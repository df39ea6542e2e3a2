"""Webhook delivery benchmark: many events to many endpoints on loopback, some slow, some failing.

    python bench/webhooks.py                                   # 10,000 events, 100 endpoints
    python bench/webhooks.py --events 2000 --live 500 --endpoints 20      # a quick one

What runs, all on this machine:
  * receivers - one process serving every endpoint (a thread per request) that logs each request
                (headers and body) to a file. Endpoints are ``ok`` (200 at once), ``slow`` (200
                after --slow-delay seconds) or ``failing`` (500 the first time it sees an event,
                then 200): --slow and --failing of them.
  * workers   - --workers Celery processes consuming only ``notification`` with a thread pool of
                --threads (webhook attempts wait on the network, not the CPU), on Redis, through
                PgBouncer (DATABASE_POOLED), as in production. Retries start after 1-2 s
                (WEBHOOKS_RETRY_BASE=2) instead of 20-40 s so the run ends.
  * publisher - this process: users, their endpoints (each pinged), 10 videos each, then the events
                published by --publishers threads, each in its own transaction, round-robin over
                the owners and their videos (so several events per resource, in order): first
                --events while no worker runs (a backlog, then drained by the workers), then
                --live more while the workers run.

Figures, from the receivers' log and the database:
  * throughput: the backlog's deliveries completed per second, from the workers' start to the
    last success (what the workers carry, whatever the publisher's pace);
  * commit -> first attempt (live phase): from each event's commit to its first request,
    P50/P95/P99, for all deliveries and for the ``ok`` endpoints alone (deliveries of a failing
    endpoint wait, by design, behind an earlier event of the same resource being retried);
  * no event lost (every delivery received with a 2xx), none misdelivered (every request's
    signature verifies with its endpoint's own secret and its resource belongs to that endpoint's
    owner), duplicates (at least once), order (per endpoint and resource, first successes in
    event order);
  * the reference, measured in the same run: the same number of POSTs sent straight to the
    receivers by as many threads as the workers have, with no platform in between.

It needs PostgreSQL (DATABASE_URL's server: a database of its own is created, then dropped),
PgBouncer on --pgbouncer-port and Redis (--broker: its keys get a prefix of their own and are
deleted). It prints figures and never asserts timings.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
VENV_BIN = Path(sys.executable).parent
EVENT_TYPES = ("video.created", "video.ready", "video.failed")
VIDEOS_PER_OWNER = 10


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--endpoints", type=int, default=100)
    parser.add_argument("--slow", type=int, default=10, help="endpoints answering after --slow-delay")
    parser.add_argument("--failing", type=int, default=10, help="endpoints failing each event once")
    parser.add_argument("--slow-delay", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=24)
    parser.add_argument("--live", type=int, default=2000, help="events published while workers run")
    parser.add_argument("--publishers", type=int, default=4)
    parser.add_argument(
        "--broker",
        default=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/13",
        help="a Redis database the run may use (REDIS_URL by default); nothing else may flush it meanwhile",
    )
    parser.add_argument("--pgbouncer-port", type=int, default=6432)
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for every delivery")
    return parser.parse_args()


# --- Receivers -------------------------------------------------------------------------------------


def serve(port_out: Any, log_path: str, slow_delay: float) -> None:
    """The receivers' process: /ep/<n>/<ok|slow|failing>, every request logged as a JSON line."""
    seen: set[tuple[str, str]] = set()
    lock = threading.Lock()
    log = open(log_path, "a", buffering=1)  # noqa: SIM115 - open for the process's life

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received = time.time()
            msg_id = self.headers.get("webhook-id", "")
            mode = self.path.rsplit("/", 1)[-1]
            with lock:
                first = (self.path, msg_id) not in seen
                seen.add((self.path, msg_id))
            status = 500 if mode == "failing" and first else 200
            if mode == "slow" or self.path.startswith("/reference/slow"):
                time.sleep(slow_delay)
            record = {
                "t": received,
                "path": self.path,
                "id": msg_id,
                "ts": self.headers.get("webhook-timestamp", ""),
                "sig": self.headers.get("webhook-signature", ""),
                "status": status,
                "body": body.decode(),
            }
            with lock:
                log.write(json.dumps(record) + "\n")
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 1024

    server = Server(("127.0.0.1", 0), Handler)
    port_out.put(server.server_address[1])
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    server.serve_forever()


def reference(port: int, count: int, threads: int, modes: list[str]) -> float:
    """POSTs straight to the receivers (no platform): requests per second."""
    body = json.dumps({"type": "reference", "data": {"x": "y" * 400}}).encode()

    def send(n: int) -> None:
        mode = modes[n % len(modes)]
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/reference/{mode}/{n}",
            data=body,
            headers={"Content-Type": "application/json", "webhook-id": f"ref{n}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(send, range(count)))
    return count / (time.perf_counter() - started)


# --- The platform ------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else float("nan")


def verify(secret: str, record: dict[str, Any]) -> bool:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{record['id']}.{record['ts']}.{record['body']}".encode()
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(expected, sig.removeprefix("v1,")) for sig in record["sig"].split())


def database_urls(base_url: str, name: str, pgbouncer_port: int) -> tuple[str, str, str]:
    parts = urlsplit(base_url)
    direct = urlunsplit(parts._replace(path=f"/{name}"))
    admin = urlunsplit(parts._replace(path="/postgres"))
    host = parts.hostname or "127.0.0.1"
    netloc = (
        parts.netloc.rsplit("@", 1)[0] + f"@{host}:{pgbouncer_port}"
        if "@" in parts.netloc
        else f"{host}:{pgbouncer_port}"
    )
    pooled = urlunsplit(parts._replace(netloc=netloc, path=f"/{name}"))
    return admin, direct, pooled


def main() -> None:
    args = parse_args()
    import psycopg

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up as on Ctrl-C
    base_url = os.environ.get(
        "DATABASE_URL", "postgres://videoplatform:videoplatform@127.0.0.1:5432/videoplatform"
    )
    name = f"vp_whbench_{os.getpid()}"
    admin, direct, pooled = database_urls(base_url, name, args.pgbouncer_port)
    work = Path(tempfile.mkdtemp(prefix="vp-bench-webhooks-"))
    prefix = f"whbench-{uuid.uuid4().hex[:8]}:"
    log_path = work / "receivers.jsonl"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "CELERY_"))},
        "DJANGO_SETTINGS_MODULE": "settings.dev",
        "DEBUG": "false",
        "DATABASE_URL": direct,
        "CELERY_BROKER_URL": args.broker,
        "CELERY_BROKER_KEY_PREFIX": prefix,
        "JOBS_STATS_REDIS_URL": args.broker,
        "VAR_DIR": str(work / "var"),
        "LOG_LEVEL": "WARNING",
        "WEBHOOKS_RETRY_BASE": "2",
        "WEBHOOKS_RETRY_MAX_DELAY": "4",
        "WEBHOOKS_REQUEUE_AFTER": "120",
        "CACHE_TIERS_ENABLED": "false",
    }
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    workers: list[subprocess.Popen[bytes]] = []
    receivers = None
    try:
        print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
        started = time.perf_counter()
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        print(f"migrated in {time.perf_counter() - started:.0f} s", flush=True)

        ports: Any = multiprocessing.get_context("fork").Queue()
        receivers = multiprocessing.get_context("fork").Process(
            target=serve, args=(ports, str(log_path), args.slow_delay), daemon=True
        )
        receivers.start()
        port = int(ports.get(timeout=10))

        os.environ.update(env)
        import django

        django.setup()
        from django.db import transaction

        from accounts.models import User
        from videoplatform import events
        from videoplatform.celery import app, configure_jobs
        from videos.models import Video
        from webhooks import services
        from webhooks.models import Delivery, Event

        configure_jobs()
        worker_env = {**env, "DATABASE_URL": pooled, "DATABASE_POOLED": "true"}

        def start_workers() -> None:
            for index in range(args.workers):
                log = open(work / f"worker{index}.log", "ab")  # noqa: SIM115 - the worker's life
                workers.append(
                    subprocess.Popen(
                        [
                            str(VENV_BIN / "celery"),
                            "-A",
                            "videoplatform",
                            "worker",
                            "-Q",
                            "notification",
                            "-P",
                            "threads",
                            "-c",
                            str(args.threads),
                            "-n",
                            f"whbench{index}-{os.getpid()}@%h",
                            "--without-gossip",
                            "--without-mingle",
                            "--without-heartbeat",
                            "-l",
                            "warning",
                        ],
                        cwd=ROOT,
                        env=worker_env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )

        def stop_workers() -> None:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            for worker in workers:
                worker.wait(timeout=60)
            workers.clear()

        start_workers()

        # The sweeper, as beat runs it (every WEBHOOKS_SWEEP_INTERVAL s): resends lost messages.
        resent = [0]
        sweeping = threading.Event()

        def sweep() -> None:
            while not sweeping.wait(5):
                try:
                    resent[0] += services.deliveries_requeue_due()
                except Exception as exc:  # noqa: BLE001 - report and go on, as beat would
                    print(f"sweeper: {exc}", flush=True)
                finally:
                    from django.db import connection

                    connection.close()

        modes = ["slow"] * args.slow + ["failing"] * args.failing
        modes += ["ok"] * (args.endpoints - len(modes))
        owners = User.objects.bulk_create(
            User(username=f"whbench{n}", email=f"whbench{n}@example.com") for n in range(args.endpoints)
        )
        endpoints = [
            services.endpoint_create(
                owner=owner, url=f"http://127.0.0.1:{port}/ep/{n}/{modes[n]}", events=["*"]
            )
            for n, owner in enumerate(owners)
        ]
        videos = {
            owner.pk: Video.objects.bulk_create(
                Video(owner=owner, title=f"bench {owner.pk} {k}", status="ready")
                for k in range(VIDEOS_PER_OWNER)
            )
            for owner in owners
        }
        deadline = time.monotonic() + 120
        while Delivery.objects.filter(status="pending").exists() and time.monotonic() < deadline:
            time.sleep(0.5)  # the pings (failing endpoints: retried once)
        print(f"{len(endpoints)} endpoints pinged; publishing {args.events} events", flush=True)

        commits: dict[str, float] = {}

        def publish(n: int) -> None:
            owner = owners[n % len(owners)]
            video = videos[owner.pk][(n // len(owners)) % VIDEOS_PER_OWNER]
            stamp: list[float] = []
            with transaction.atomic():
                transaction.on_commit(lambda: stamp.append(time.time()))  # runs first: the commit's time
                event = events.publish_on_commit(EVENT_TYPES[(n // len(owners)) % len(EVENT_TYPES)], video)
            commits[event.id] = stamp[0]

        bench_events = Event.objects.exclude(type="ping")

        def publish_all(numbers: range) -> float:
            started = time.perf_counter()
            with ThreadPoolExecutor(args.publishers) as pool:
                list(pool.map(publish, numbers))
            return time.perf_counter() - started

        def wait_for_deliveries() -> None:
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline:
                pending = Delivery.objects.filter(status="pending", event__in=bench_events).count()
                if not pending:
                    return
                time.sleep(0.5)
            print(f"TIMED OUT with {pending} deliveries pending", flush=True)

        # Phase 1, the backlog: events published while no worker runs, then drained.
        stop_workers()
        backlog = range(args.events)
        seconds = publish_all(backlog)
        print(f"backlog: {args.events} events published in {seconds:.0f} s; draining", flush=True)
        drain_started = time.time()
        threading.Thread(target=sweep, daemon=True).start()
        start_workers()
        wait_for_deliveries()
        drain_seconds = time.time() - drain_started
        backlog_ids = set(commits)
        # Phase 2, live: events published while the workers run (commit -> first attempt).
        live = range(args.events, args.events + args.live)
        seconds = publish_all(live)
        live_rate = args.live / seconds
        print(f"live: {args.live} events published in {seconds:.0f} s ({live_rate:.0f}/s)", flush=True)
        wait_for_deliveries()
        stop_workers()
        sweeping.set()

        # --- The receivers' log against the database -------------------------------------------
        secrets = {f"/ep/{n}/{modes[n]}": endpoint.secret for n, endpoint in enumerate(endpoints)}
        owner_of = {f"/ep/{n}/{modes[n]}": endpoint.owner_id for n, endpoint in enumerate(endpoints)}
        mode_of = {path: path.rsplit("/", 1)[-1] for path in secrets}
        path_of = {endpoint.pk: f"/ep/{n}/{modes[n]}" for n, endpoint in enumerate(endpoints)}
        expected = {
            (path_of[endpoint_id], public_id)
            for endpoint_id, public_id in Delivery.objects.filter(event__in=bench_events).values_list(
                "endpoint_id", "event__public_id"
            )
        }
        sequence = dict(bench_events.values_list("public_id", "id"))
        records = [json.loads(line) for line in log_path.read_text().splitlines()]
        records = [r for r in records if r["path"].startswith("/ep/") and r["id"] in sequence]
        misdelivered = [
            r for r in records
            if not verify(secrets[r["path"]], r)
            or json.loads(r["body"])["data"]["owner"]["id"] != owner_of[r["path"]]
            or (r["path"], r["id"]) not in expected
        ]  # fmt: skip
        first_seen: dict[tuple[str, str], float] = {}
        succeeded: dict[tuple[str, str], float] = {}
        requests_per: dict[tuple[str, str], int] = defaultdict(int)
        for r in sorted(records, key=lambda r: r["t"]):
            key = (r["path"], r["id"])
            first_seen.setdefault(key, r["t"])
            requests_per[key] += 1
            if 200 <= r["status"] < 300:
                succeeded.setdefault(key, r["t"])
        lost = expected - set(succeeded)
        duplicates = sum(
            1 for key, count in requests_per.items() if count > (2 if mode_of[key[0]] == "failing" else 1)
        )
        latencies = {
            key: first_seen[key] - commits[key[1]]
            for key in first_seen
            if key[1] in commits and key[1] not in backlog_ids
        }
        healthy = [value for key, value in latencies.items() if mode_of[key[0]] == "ok"]
        everything = list(latencies.values())
        # Order: per endpoint and resource, first successes in event order.
        resource_of = {r["id"]: json.loads(r["body"])["data"]["id"] for r in records}
        streams: dict[tuple[str, str], list[tuple[float, int]]] = defaultdict(list)
        for (path, public_id), at in succeeded.items():
            streams[(path, resource_of[public_id])].append((at, sequence[public_id]))
        out_of_order = sum(
            1
            for stream in streams.values()
            for (_, a), (_, b) in zip(sorted(stream), sorted(stream)[1:], strict=False)
            if b < a
        )
        drained = [at for key, at in succeeded.items() if key[1] in backlog_ids]
        span = max(drained) - drain_started if drained else float("nan")

        reference_rate = reference(port, min(args.events, 5000), args.workers * args.threads, modes)

        print()
        print(f"deliveries expected        {len(expected)}  ({args.endpoints} endpoints: "
              f"{args.slow} slow {args.slow_delay:g} s, {args.failing} failing once per event)")  # fmt: skip
        print(f"received with a 2xx        {len(succeeded)}")
        print(f"lost                       {len(lost)}")
        print(f"misdelivered / bad sig     {len(misdelivered)}")
        print(f"duplicates beyond retries  {duplicates}")
        print(f"out of order (per res.)    {out_of_order}")
        print(f"requests to receivers      {len(records)}")
        print(f"messages resent (sweeper)  {resent[0]}")
        print(f"throughput (backlog)       {len(drained) / span:.0f} deliveries/s "
              f"({len(drained)} drained in {span:.1f} s from the workers' start; "
              f"all done after {drain_seconds:.1f} s)")  # fmt: skip
        print(f"live publishing rate       {live_rate:.0f} events/s ({args.publishers} threads)")
        for label, values in (("all", everything), ("ok endpoints", healthy)):
            print(
                f"commit -> first attempt    {label}: P50 {percentile(values, 50) * 1000:.0f} ms, "
                f"P95 {percentile(values, 95) * 1000:.0f} ms, P99 {percentile(values, 99) * 1000:.0f} ms"
            )
        threads = args.workers * args.threads
        print(f"reference (no platform)    {reference_rate:.0f} POSTs/s with {threads} threads")
        print(f"load average after         {os.getloadavg()[0]:.1f}")
        if lost or misdelivered:
            print("PROBLEM: events lost or misdelivered (see above)")
        app.close()
    finally:
        for worker in workers:
            worker.kill()
        if receivers is not None:
            receivers.terminate()
        from django.db import connections

        with contextlib.suppress(Exception):  # Django may not be set up yet
            connections.close_all()
        import redis

        client = redis.Redis.from_url(args.broker)
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
