"""Faults under load, bounded for CI: each test runs its own throwaway servers (Redis, PostgreSQL)
and a gunicorn on them, with the load generator of bench/loadgen.py. The longer runs, with a
replica and PgBouncer as well, are bench/faults."""

from __future__ import annotations

import json
import time

from bench.loadgen import LoadGenerator, Report
from tests.support.processes import http_get

# Generous: a request that gets no answer within this is a failure (status 0), never a slow success.
CLIENT_TIMEOUT = 15.0


def ready(url: str) -> tuple[int, dict[str, object]]:
    status, body = http_get(f"{url}/ready", timeout=CLIENT_TIMEOUT)
    return status, json.loads(body)


def sample_ready(url: str, seconds: float, interval: float = 0.5) -> list[int]:
    statuses = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        statuses.append(ready(url)[0])
        time.sleep(interval)
    return statuses


def print_report(title: str, report: Report, fault_at: float, back_at: float) -> None:
    """Shown with -s (and in the log of a failing run): the same figures as bench/faults."""
    print(report.table(title))
    print(f"  fault at {fault_at:.2f} s, dependency back at {back_at:.2f} s")


__all__ = ["CLIENT_TIMEOUT", "LoadGenerator", "print_report", "ready", "sample_ready"]
