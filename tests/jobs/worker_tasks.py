"""Probe tasks the job tests' workers load (``-I tests.jobs.worker_tasks``): each records that it
ran in a Redis list, so a test can see which queue ran what, in what order, how many times.

Their names follow the routes: ``*.tasks.send_*`` runs on ``email`` (high), ``*.tasks.recommend_*``
on ``recommendation`` (low), anything else on ``default`` (mid).
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis
from celery import shared_task

from videoplatform.jobs.base import JobTask, backoff_seconds
from videoplatform.jobs.queues import max_retries


def probe_redis() -> Any:
    return redis.Redis.from_url(os.environ["JOBS_TEST_PROBE_URL"])


def _record(key: str, label: str, request: Any) -> None:
    info = request.delivery_info or {}
    probe_redis().rpush(key, f"{label}|{info.get('routing_key', '')}|{info.get('priority', '')}")


@shared_task(bind=True, name="jobstest.tasks.block")
def block(self: Any, key: str) -> str:
    """Holds the worker's only slot until the test sets ``<key>:release``."""
    client = probe_redis()
    client.rpush(f"{key}:started", self.request.id)
    deadline = time.monotonic() + 60
    while not client.get(f"{key}:release") and time.monotonic() < deadline:
        time.sleep(0.05)
    client.rpush(f"{key}:finished", self.request.id)
    return "released"


@shared_task(bind=True, name="jobstest.tasks.probe")
def probe(self: Any, key: str, label: str) -> str:
    _record(key, label, self.request)
    return label


@shared_task(bind=True, name="jobstest.tasks.send_probe")
def send_probe(self: Any, key: str, label: str) -> str:
    _record(key, label, self.request)
    return label


@shared_task(bind=True, name="jobstest.tasks.recommend_probe")
def recommend_probe(self: Any, key: str, label: str) -> str:
    _record(key, label, self.request)
    return label


@shared_task(bind=True, base=JobTask, name="jobstest.tasks.index_flaky", max_retries=max_retries("indexing"))
def index_flaky(self: JobTask, key: str, failures: int) -> int:
    """Fails its first ``failures`` attempts with a transient error, then succeeds."""
    client = probe_redis()
    attempt = int(client.rpush(f"{key}:attempts", repr(time.time())))
    if attempt <= failures:
        client.rpush(f"{key}:countdowns", repr(backoff_seconds(int(self.request.retries))))
        self.retry_later(ConnectionError(f"attempt {attempt} could not reach the service"))
    return attempt
