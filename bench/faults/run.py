"""Faults under a steady mixed load, each on a throwaway stack of its own (loopback only).

    python -m bench.faults replica      # the read replica stopped, then started
    python -m bench.faults redis        # Redis stopped, then started
    python -m bench.faults pgbouncer    # PgBouncer restarted
    python -m bench.faults primary      # the primary restarted
    python -m bench.faults worker       # a Celery worker SIGKILLed mid-transcode
    python -m bench.faults rollout      # the API replaced by a rolling restart, then SIGHUP
    python -m bench.faults all          # every one, in turn

Each run is bounded (``--before``, ``--down``, ``--after`` seconds of load around the fault) and
stops by itself. It prints requests sent, failed, the error window and the latency, then checks
what must hold: every acknowledged write is in the database, failures (if the fault allows any)
are the API's JSON errors, never a traceback or an HTML page, and nothing hung past its timeout.
It exits 1 when one of those does not hold. docs/reliability.md records the figures.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.faults.stack import Gunicorn, Stack, pg_connect, stack
from bench.loadgen import DEFAULT_TIMEOUT, LoadGenerator, Report, seed_users, seed_videos
from tests.support.processes import http_get, wait_until


@dataclass
class Outcome:
    """What a fault run measured, and the checks that failed."""

    name: str
    report: Report
    fault_at: float
    recovered_at: float
    notes: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def check(self, condition: bool, problem: str) -> None:
        if not condition:
            self.problems.append(problem)

    def print(self) -> None:
        print(self.report.table(f"== fault: {self.name}"))
        print(f"  fault injected at   {self.fault_at:.2f} s, recovery started at {self.recovered_at:.2f} s")
        window = self.report.error_window
        if window is not None:
            print(f"  errors after recovery started: {max(0.0, window[1] - self.recovered_at):.2f} s")
        for key, value in self.notes.items():
            print(f"  {key:<20}{value}")
        failures = self.report.failures
        if failures:
            kinds: dict[str, int] = {}
            for sample in failures:
                label = f"{sample.status} {sample.op}: {sample.error[:90]}"
                kinds[label] = kinds.get(label, 0) + 1
            print("  failures by kind:")
            for label, count in sorted(kinds.items(), key=lambda item: -item[1])[:8]:
                print(f"    {count:>5} x {label}")
        print("  result:", "OK" if not self.problems else "PROBLEMS")
        for problem in self.problems:
            print(f"    - {problem}")


def acknowledged_missing(built: Stack, ids: list[str]) -> list[str]:
    """Acknowledged writes (ids answered 201) that the primary does not have."""
    if not ids:
        return []
    with pg_connect(built.primary.port) as conn:
        found = {row[0] for row in conn.execute("SELECT id FROM videos_video WHERE id = ANY(%s)", (ids,))}
    return sorted(set(ids) - found)


def metric_sum(url: str, name: str, **labels: str) -> float:
    status, body = http_get(f"{url}/metrics", timeout=5)
    if status != 200:
        return float("nan")
    total = 0.0
    for line in body.decode().splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def ready_status(url: str) -> int:
    try:
        return http_get(f"{url}/ready", timeout=3)[0]
    except OSError:
        return 0


class ReadyWatcher:
    """Samples /ready while the fault lasts."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.seen: list[int] = []

    def sample(self, seconds: float, interval: float = 0.5) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.seen.append(ready_status(self.url))
            time.sleep(interval)


def under_load(
    name: str,
    built: Stack,
    *,
    inject: Callable[[], None],
    recover: Callable[[], None],
    before: float,
    down: float,
    after: float,
    threads: int,
    workers: int = 2,
    prepare: Callable[[Gunicorn], None] | None = None,
) -> tuple[Outcome, Gunicorn, ReadyWatcher]:
    """Starts gunicorn and the load, injects the fault, recovers, and collects the outcome."""
    server = Gunicorn(built.app_env(), workers=workers)
    server.start()
    users = seed_users(server.url, count=4, prefix=name)
    videos = seed_videos(server.url, users, per_user=3)
    if prepare:
        prepare(server)
    load = LoadGenerator(server.url, users=users, video_ids=videos, threads=threads)
    load.start(duration=before + down + after + 120)
    watcher = ReadyWatcher(server.url)
    time.sleep(before)
    fault_at = load.now()
    inject()
    watcher.sample(down)
    recovered_at = load.now()
    recover()
    back_at = load.now()
    time.sleep(after)
    report = load.stop()
    outcome = Outcome(name=name, report=report, fault_at=fault_at, recovered_at=recovered_at)
    outcome.notes["dependency back at"] = f"{back_at:.2f} s"
    missing = acknowledged_missing(built, report.acknowledged_writes)
    outcome.notes["writes checked"] = (
        f"{len(report.acknowledged_writes)} acknowledged, {len(missing)} missing"
    )
    outcome.check(not missing, f"acknowledged writes missing from the database: {missing[:5]}")
    outcome.check(
        not report.unclean_failures,
        f"{len(report.unclean_failures)} failures were not JSON errors, e.g. "
        f"{report.unclean_failures[0].error[:120] if report.unclean_failures else ''}",
    )
    hung = [s for s in report.samples if s.latency > DEFAULT_TIMEOUT]
    timeouts = [s for s in report.failures if s.status == 0]
    outcome.notes["timeouts"] = len(timeouts)
    if timeouts:
        outcome.notes["timed out (sent at)"] = ", ".join(f"{s.op} at {s.at:.2f} s" for s in timeouts[:5])
    outcome.check(not hung, f"{len(hung)} requests took longer than the {DEFAULT_TIMEOUT} s client timeout")
    settled = report.between(recovered_at + min(after, 5.0) * 0.9, 1e9)
    outcome.check(settled.failed == 0, f"{settled.failed} failures well after recovery started")
    outcome.notes["/ready during fault"] = _ready_summary(watcher.seen)
    return outcome, server, watcher


def _ready_summary(statuses: list[int]) -> str:
    counts: dict[int, int] = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    return json.dumps(counts)


# --- the faults --------------------------------------------------------------------------------


def fault_replica(args: argparse.Namespace) -> Outcome:
    with stack(
        standby=True, pgbouncer=True, template_url=args.template_url, pgbouncer_overrides=args.pgbouncer_set
    ) as built:
        assert built.standby is not None
        standby = built.standby
        outcome, server, _ = under_load(
            "replica",
            built,
            inject=standby.stop,
            recover=standby.start,
            before=args.before,
            down=args.down,
            after=args.after,
            threads=args.threads,
        )
        try:
            outcome.check(
                outcome.report.of_kind("read").failed == 0, "reads failed while the replica was down"
            )
            # Reads return to the replica: its count keeps growing after it is back.
            first = metric_sum(server.url, "db_queries_total", alias="replica1")
            # Reads the cache cannot answer (a page size not asked before, a new search).
            for index in range(1, 31):
                http_get(f"{server.url}/api/videos?limit={index}&page=2")
                http_get(f"{server.url}/api/search?q=seed{index}")
            wait_until(
                lambda: metric_sum(server.url, "db_queries_total", alias="replica1") > first, timeout=15
            )
            second = metric_sum(server.url, "db_queries_total", alias="replica1")
            outcome.notes["replica reads after"] = f"{second - first:.0f} more queries on replica1"
            outcome.check(second > first, "reads did not return to the replica")
        finally:
            server.destroy()
        return outcome


def fault_redis(args: argparse.Namespace) -> Outcome:
    with stack(
        standby=True, pgbouncer=True, template_url=args.template_url, pgbouncer_overrides=args.pgbouncer_set
    ) as built:
        outcome, server, watcher = under_load(
            "redis",
            built,
            inject=built.redis.stop,
            recover=built.redis.start,
            before=args.before,
            down=args.down,
            after=args.after,
            threads=args.threads,
        )
        try:
            outcome.check(outcome.report.failed == 0, "requests failed while Redis was down")
            outcome.check(503 in watcher.seen, "/ready never answered 503 while Redis was down")
            import redis

            client = redis.Redis.from_url(built.redis.url)
            keys = client.dbsize()
            outcome.notes["redis keys after"] = keys
            outcome.check(keys > 0, "nothing was cached again after Redis came back")
            outcome.check(ready_status(server.url) == 200, "/ready did not return to 200")
        finally:
            server.destroy()
        return outcome


def fault_pgbouncer(args: argparse.Namespace) -> Outcome:
    with stack(
        standby=True, pgbouncer=True, template_url=args.template_url, pgbouncer_overrides=args.pgbouncer_set
    ) as built:
        assert built.pgbouncer is not None
        pgbouncer = built.pgbouncer
        outcome, server, _ = under_load(
            "pgbouncer",
            built,
            inject=pgbouncer.stop,
            recover=pgbouncer.start,
            before=args.before,
            down=args.down,
            after=args.after,
            threads=args.threads,
        )
        server.destroy()
        return outcome


def fault_primary(args: argparse.Namespace) -> Outcome:
    with stack(
        standby=True, pgbouncer=True, template_url=args.template_url, pgbouncer_overrides=args.pgbouncer_set
    ) as built:
        outcome, server, watcher = under_load(
            "primary",
            built,
            inject=built.primary.stop,
            recover=built.primary.start,
            before=args.before,
            down=args.down,
            after=args.after,
            threads=args.threads,
        )
        try:
            statuses = {s.status for s in outcome.report.failures}
            outcome.notes["failure statuses"] = sorted(statuses)
            outcome.check(
                statuses <= {503}, f"failures other than 503 while the primary was down: {statuses}"
            )
            outcome.check(503 in watcher.seen, "/ready never answered 503 while the primary was down")
        finally:
            server.destroy()
        return outcome


FAULTS: dict[str, Callable[[argparse.Namespace], Outcome]] = {
    "replica": fault_replica,
    "redis": fault_redis,
    "pgbouncer": fault_pgbouncer,
    "primary": fault_primary,
}


def main(argv: list[str] | None = None) -> int:
    from bench.faults import deploy, worker

    faults = {**FAULTS, "worker": worker.fault_worker, "rollout": deploy.fault_rollout}
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("fault", choices=[*faults, "all"])
    parser.add_argument("--before", type=float, default=5.0, help="seconds of load before the fault")
    parser.add_argument("--down", type=float, default=8.0, help="seconds the dependency stays down")
    parser.add_argument("--after", type=float, default=12.0, help="seconds of load after recovery")
    parser.add_argument("--threads", type=int, default=6, help="load threads")
    parser.add_argument(
        "--template-url",
        default="",
        help="a migrated PostgreSQL database to copy into each throwaway primary instead of migrating it",
    )
    parser.add_argument(
        "--pgbouncer-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting of the shipped pgbouncer.ini for this run (e.g. server_login_retry=1)",
    )
    parser.add_argument(
        "--visibility-timeout",
        type=int,
        default=60,
        help="worker fault: CELERY_VISIBILITY_TIMEOUT for the run (shipped: 300)",
    )
    parser.add_argument(
        "--pre-stop", type=float, default=10.0, help="rollout: the preStop sleep (manifest: 10)"
    )
    parser.add_argument(
        "--propagation", type=float, default=1.0, help="rollout: seconds until a pod leaves the endpoints"
    )
    parser.add_argument("--pod-workers", type=int, default=1, help="rollout: gunicorn workers per pod")
    parser.add_argument("--wait", type=float, default=600, help="worker fault: seconds to wait for the job")
    parser.add_argument("--clip-seconds", type=int, default=12, help="worker fault: length of the clip")
    args = parser.parse_args(argv)
    args.pgbouncer_set = dict(item.split("=", 1) for item in args.pgbouncer_set)
    names = list(faults) if args.fault == "all" else [args.fault]
    outcomes = []
    for name in names:
        started = time.monotonic()
        print(f"-- {name}: building the stack and running ...", flush=True)
        outcome = faults[name](args)
        outcome.print()
        print(f"  wall time           {time.monotonic() - started:.0f} s", flush=True)
        outcomes.append(outcome)
    return 1 if any(o.problems for o in outcomes) else 0


def _strip(text: str) -> str:
    return re.sub(r"\s+", " ", text)


if __name__ == "__main__":
    sys.exit(main())
