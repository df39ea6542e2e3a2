"""A worker told to stop (SIGTERM, as Kubernetes does) finishes the job it is running and takes
no new one: the waiting job stays queued for the next worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis

from tests.jobs.support import broker_key, celery_worker, unique_key
from tests.support.processes import wait_until
from videoplatform.jobs.stats import redis_priority_key

pytestmark = pytest.mark.django_db(transaction=True)


def test_warm_shutdown_finishes_the_running_job_and_leaves_the_queued_one(
    redis_broker: str, probe: Any, tmp_path: Path
) -> None:
    from videoplatform.celery import app

    key = unique_key("shutdown")
    broker = redis.Redis.from_url(redis_broker)
    with celery_worker(redis_broker, tmp_path, queues="default") as worker:
        app.send_task("jobstest.tasks.block", (key,))
        assert wait_until(lambda: probe.llen(f"{key}:started") == 1, timeout=30), worker.tail()
        app.send_task("jobstest.tasks.probe", (key, "next"))
        worker.terminate()
        assert wait_until(lambda: "worker: Warm shutdown" in worker.text(), timeout=30), worker.tail()
        probe.set(f"{key}:release", 1)
        assert worker.wait(timeout=60) == 0, worker.tail()

    assert probe.llen(f"{key}:finished") == 1  # the running job completed
    assert probe.llen(key) == 0  # the waiting one did not start...
    assert broker.llen(broker_key(redis_priority_key("default", 3))) == 1  # ...and is still queued
    assert broker.hlen(broker_key("unacked")) == 0
