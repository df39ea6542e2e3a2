"""Chaos soak: the mixed load for ``--minutes`` with a fault every ``--every`` minutes, in random
order (``--seed``), on a throwaway platform of its own on loopback; then a checker.

    python -m bench.chaos [--minutes 30] [--every 2] [--seed 1] [--faults api-rollout,pg-failover,...]
                          [--threads 6] [--template-url postgres://…/a_migrated_db]
                          [--redis-port-base 0] [--visibility-timeout 60]

The platform: a PostgreSQL primary (a failover pair with ``pg-failover``), the app's standalone
Redis (sessions, tokens, throttles), a Redis Cluster of 3 masters with one replica each (the L2
cache, ``REDIS_CLUSTER_URL``), a Redis for the Celery broker, two Celery workers on every queue
but transcoding, and the API as two gunicorn pods behind the Service stand-in of
``bench/faults/rollout.py``. The faults
(``FAULTS``; ``@fault`` registers another):

- ``api-rollout``: a rolling restart of the API with the manifests' timings;
- ``worker-kill``: a Celery worker SIGKILLed (master and pool) and a new one started, as a
  Deployment replaces a lost pod; its unacknowledged jobs come back after the visibility timeout;
- ``cluster-master-kill``: a master of the Redis Cluster SIGKILLed; its replica takes over
  (``cluster-node-timeout`` 2 s); the dead node is started again and rejoins as a replica;
- ``redis-restart``: the standalone Redis SIGKILLed and started again 5 s later (no persistence:
  it comes back empty);
- ``pg-failover``: the primary SIGKILLed and its synchronous standby promoted, the old primary
  rewound into the new one's standby (``bench/faults/pg_failover.py``); with it in the list the
  app's database is on that pair, reached by a multi-host URL (``target_session_attrs``).

The checker, once the load has stopped and the queues are empty: every acknowledged write (a
201) is in the database exactly once (one row per title, the titles being unique per request),
and every acknowledged video has its search document (its indexing job ran, whatever worker
died). Printed: availability (successful / all requests), the longest error window per fault
(first to last failed request after it, before the next), acknowledged writes lost.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from bench.faults.redis_cluster import RedisCluster
from bench.faults.rollout import Deployment
from bench.faults.stack import Stack, pg_connect, stack
from bench.loadgen import LoadGenerator, Report, seed_users, seed_videos
from tests.support.processes import ROOT, VENV_BIN, RedisServer, free_port, wait_until

# Every queue but transcoding (the load uploads no media): registrations send email, writes
# feed indexing and recommendations.
QUEUES = "email,notification,indexing,recommendation,default"


class Worker:
    """A Celery worker on the queues the load's writes feed, in a process group of its own."""

    def __init__(self, env: dict[str, str], log: Path, name: str) -> None:
        self.env = env
        self.log = log
        self.name = name
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [str(VENV_BIN / "celery"), "-A", "videoplatform", "worker", "-Q", QUEUES, "-c", "2",
                 "-n", f"{self.name}@%h", "--without-gossip", "--without-mingle", "-l", "warning"],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def kill(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()
            self.process = None


@dataclass
class Platform:
    built: Stack
    broker: RedisServer
    cluster: RedisCluster
    deployment: Deployment
    worker_env: dict[str, str]
    workers: list[Worker] = field(default_factory=list)
    serial: int = 0
    pair: Any = None  # a PgPair when the primary failover is among the faults

    @property
    def database_port(self) -> int:
        """The port of the primary that holds the app's database now."""
        return int(self.pair.primary.port) if self.pair is not None else self.built.primary.port

    def new_worker(self) -> Worker:
        self.serial += 1
        worker = Worker(self.worker_env, self.built.work / "workers.log", f"chaos{self.serial}")
        worker.start()
        self.workers.append(worker)
        return worker


Fault = Callable[[Platform], dict[str, Any]]
FAULTS: dict[str, Fault] = {}


def fault(name: str) -> Callable[[Fault], Fault]:
    """Registers a fault: a function that injects it on the platform, waits until the platform
    has done what it does about it (not until everything is healthy again) and returns notes."""

    def register(function: Fault) -> Fault:
        FAULTS[name] = function
        return function

    return register


@fault("api-rollout")
def api_rollout(platform: Platform) -> dict[str, Any]:
    return platform.deployment.rolling_restart()


@fault("worker-kill")
def worker_kill(platform: Platform) -> dict[str, Any]:
    victim = platform.workers.pop(0)
    victim.kill()
    platform.new_worker()
    return {"killed": victim.name}


@fault("cluster-master-kill")
def cluster_master_kill(platform: Platform) -> dict[str, Any]:
    cluster = platform.cluster
    victim = random.choice(cluster.masters())
    started = time.monotonic()
    cluster.kill(victim)
    failed_over = wait_until(
        lambda: cluster.healthy() and len(cluster.masters()) == 3, timeout=60, interval=0.2
    )
    took = time.monotonic() - started
    cluster.start_node(victim)  # rejoins as a replica of the master that took over
    return {"killed": victim, "cluster ok again after s": round(took, 1) if failed_over else None}


@fault("pg-failover")
def pg_failover(platform: Platform) -> dict[str, Any]:
    """The primary SIGKILLed, the standby promoted, the old one rewound into its standby
    (``bench/faults/pg_failover.py``); the app follows through its multi-host URL."""
    timings = platform.pair.failover()
    return {
        key: round(value, 1) for key, value in timings.items() if key in ("promoted", "rejoined", "total")
    }


@fault("redis-restart")
def redis_restart(platform: Platform) -> dict[str, Any]:
    server = platform.built.redis
    if server.process is not None:
        server.process.kill()
        server.process.wait(timeout=10)
        server.process = None
    time.sleep(5)
    server.start()
    return {"down s": 5}


@contextlib.contextmanager
def platform(args: argparse.Namespace) -> Iterator[Platform]:
    base = args.redis_port_base
    cluster = RedisCluster(port_base=base)
    broker = RedisServer()
    if base:
        broker.port, broker.url = base + 6, f"redis://127.0.0.1:{base + 6}/0"
    with stack(template_url=args.template_url) as built:
        if base:
            built.redis.stop()
            built.redis.port, built.redis.url = base + 7, f"redis://127.0.0.1:{base + 7}/0"
            built.redis.start()
        database: dict[str, str] = {}
        pair = None
        if "pg-failover" in args.fault_names:
            # The app's database on a primary + synchronous standby pair instead of one primary.
            from bench.faults.pg_failover import PgPair

            ports = (
                [int(p) for p in args.pg_ports.split(",")] if args.pg_ports else [free_port(), free_port()]
            )
            pair_dir = Path(tempfile.mkdtemp(prefix="vp-chaos-pg-"))  # searchable by postgres
            shutil.chown(pair_dir, "postgres", "postgres")
            pair = PgPair(pair_dir, (ports[0], ports[1]), synchronous=True)
            pair.start()
            pair.create_database("videoplatform", args.template_url)
            database = {"DATABASE_URL": pair.database_url("videoplatform"), "DATABASE_POOLED": "0"}
        env = built.app_env(REDIS_CLUSTER_URL=cluster.url, CELERY_BROKER_URL=broker.url, **database)
        worker_env = {**env, "CELERY_VISIBILITY_TIMEOUT": str(args.visibility_timeout)}
        (built.work / "pods").mkdir()
        deployment = Deployment(env, replicas=2, workers=1, probe_period=1.0, log_dir=built.work / "pods")
        result = Platform(built, broker, cluster, deployment, worker_env, pair=pair)
        try:
            cluster.start()
            broker.start()
            deployment.start()
            for _ in range(2):
                result.new_worker()
            yield result
        finally:
            if args.logs:  # kept whatever happened
                keep = Path(args.logs)
                keep.mkdir(parents=True, exist_ok=True)
                for path in [*(built.work / "pods").glob("*.log"), built.work / "workers.log"]:
                    if path.exists():
                        shutil.copy(path, keep / path.name)
            deployment.stop()
            for worker in result.workers:
                worker.stop()
            broker.stop()
            cluster.stop()
            if pair is not None:
                pair.stop()
                shutil.rmtree(pair.base_dir, ignore_errors=True)


def queues_empty(broker_url: str) -> bool:
    client = redis.Redis.from_url(broker_url)
    names = tuple(name.encode() for name in QUEUES.split(","))
    waiting = sum(
        client.llen(key)
        for key in client.scan_iter("*")
        if key.startswith(names) and client.type(key) == b"list"
    )
    return waiting == 0 and client.hlen("unacked") == 0


def logged(built: Stack, text: str) -> int:
    """How many lines of the pods' and workers' logs contain ``text``."""
    paths = [*(built.work / "pods").glob("*.log"), built.work / "workers.log"]
    return sum(
        line.count(text)
        for path in paths
        if path.exists()
        for line in path.read_text(errors="replace").splitlines()
    )


def sweep(env: dict[str, str]) -> str:
    """Runs the search-index sweep once (beat runs it every 15 minutes), without its settle time."""
    code = (
        "import django; django.setup(); from datetime import timedelta; "
        "from videos.search import search_index_sweep; print(search_index_sweep(settle=timedelta(0)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.stdout.strip() or done.stderr.strip()[-200:]


def check(built: Stack, report: Report, port: int) -> dict[str, Any]:
    acknowledged = report.acknowledged_writes
    created_at = {s.created_id: s.at for s in report.samples if s.created_id}
    with pg_connect(port) as conn:
        unindexed = [
            row[0]
            for row in conn.execute(
                "SELECT id FROM videos_video v WHERE id = ANY(%s) AND NOT EXISTS "
                "(SELECT 1 FROM videos_videosearchdocument d WHERE d.video_id = v.id)",
                (acknowledged,),
            )
        ]
        present = conn.execute(
            "SELECT count(*) FROM videos_video WHERE id = ANY(%s)", (acknowledged,)
        ).fetchone()
        duplicates = conn.execute(
            "SELECT count(*) FROM (SELECT title FROM videos_video WHERE title LIKE 'load %%' "
            "GROUP BY title HAVING count(*) > 1) AS twice"
        ).fetchone()
        indexed = conn.execute(
            "SELECT count(*) FROM videos_videosearchdocument WHERE video_id = ANY(%s)", (acknowledged,)
        ).fetchone()
    return {
        "acknowledged": len(acknowledged),
        "lost": len(acknowledged) - int(present[0] if present else 0),
        "duplicated": int(duplicates[0] if duplicates else 0),
        "without search document": len(acknowledged) - int(indexed[0] if indexed else 0),
        "unindexed written at (s)": sorted(round(created_at.get(i, -1), 1) for i in unindexed),
        "enqueue refused (logged)": logged(built, "could not enqueue"),
        "tracebacks in logs": logged(built, "Traceback"),
    }


def windows(report: Report, injections: list[tuple[str, float]], end: float) -> dict[str, float]:
    """The longest span from first to last failed request after each fault, per fault.

    A failure belongs to the last fault injected before its answer came (a request sent just
    before a fault may fail because of it)."""
    longest: dict[str, float] = {name: 0.0 for name, _ in injections}
    for index, (name, at) in enumerate(injections):
        until = injections[index + 1][1] if index + 1 < len(injections) else end + 3600
        failures = [f for f in report.failures if at <= f.at + f.latency < until]
        if failures:
            span = max(f.at + f.latency for f in failures) - min(f.at for f in failures)
            longest[name] = max(longest[name], span)
    return longest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=30.0, help="minutes of load")
    parser.add_argument("--every", type=float, default=2.0, help="minutes between two faults")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--faults", default=",".join(FAULTS), help="comma-separated, from: " + ", ".join(FAULTS)
    )
    parser.add_argument("--threads", type=int, default=6)
    parser.add_argument("--template-url", default="", help="a migrated database to copy instead of migrating")
    parser.add_argument("--redis-port-base", type=int, default=0, help="8 consecutive ports (0: free ports)")
    parser.add_argument("--pg-ports", default="", help="pg-failover: the pair's two ports (default: free)")
    parser.add_argument("--logs", default="", help="a folder to keep the pods' and workers' logs in")
    parser.add_argument("--visibility-timeout", type=int, default=60, help="the workers' (shipped: 300)")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.faults.split(",") if name.strip()]
    args.fault_names = names
    unknown = set(names) - set(FAULTS)
    if unknown:
        parser.error(f"unknown faults: {sorted(unknown)}")
    rng = random.Random(args.seed)
    random.seed(args.seed)
    count = max(1, int(args.minutes / args.every) - 1)
    # Random order, each fault as often as the others: shuffled rounds of the list.
    plan: list[str] = []
    while len(plan) < count:
        plan.extend(rng.sample(names, len(names)))
    plan = plan[:count]
    print(f"plan (seed {args.seed}): {plan}", flush=True)

    with platform(args) as chaos:
        url = chaos.deployment.url
        users = seed_users(url, count=4, prefix="chaos")
        videos = seed_videos(url, users, per_user=2)
        load = LoadGenerator(url, users=users, video_ids=videos, threads=args.threads)
        load.start(duration=args.minutes * 60 + 600)
        injections: list[tuple[str, float]] = []
        for index, name in enumerate(plan, start=1):
            time.sleep(max(0.0, index * args.every * 60 - load.now()))
            at = load.now()
            notes = FAULTS[name](chaos)
            injections.append((name, at))
            print(f"  {at:7.1f} s  {name:<20} done after {load.now() - at:5.1f} s  {notes}", flush=True)
        time.sleep(max(0.0, args.minutes * 60 - load.now()))
        end = load.now()
        report = load.stop()
        drained = wait_until(
            lambda: queues_empty(chaos.broker.url), timeout=args.visibility_timeout * 3 + 120
        )
        checked = check(chaos.built, report, chaos.database_port)
        if checked["without search document"]:
            checked["written by the sweep"] = sweep(chaos.worker_env)
            checked["without one after it"] = check(chaos.built, report, chaos.database_port)[
                "without search document"
            ]

    print(report.table(f"== chaos soak: {args.minutes:g} min, a fault every {args.every:g} min"))
    availability = 100.0 * (report.sent - report.failed) / max(1, report.sent)
    print(f"  availability        {availability:.3f} % ({report.sent - report.failed} of {report.sent})")
    for name, span in sorted(windows(report, injections, end).items()):
        print(f"  longest error window after {name:<20} {span:6.2f} s")
    print(f"  queues drained      {drained}")
    for key, value in checked.items():
        print(f"  {key:<26}{value}")
    statuses: dict[str, int] = {}
    for sample in report.failures:
        label = f"{sample.status} {sample.op}: {sample.error[:70]}"
        statuses[label] = statuses.get(label, 0) + 1
    for label, n in sorted(statuses.items(), key=lambda item: -item[1])[:8]:
        print(f"    {n:>5} x {label}")
    unindexed = checked.get("without one after it", checked["without search document"])
    ok = checked["lost"] == 0 and checked["duplicated"] == 0 and unindexed == 0
    return 0 if ok and drained and availability >= 99.9 else 1


if __name__ == "__main__":
    sys.exit(main())
