"""Redis broker, at-least-once: a job whose worker dies comes back within the visibility timeout
(minutes as shipped), and a job that outlives that timeout is not handed to a second worker while
its own still runs it (the worker renews its lease, videoplatform/jobs/lease.py). The timeouts
are shortened here (2 s, renewed every 0.5 s) so the test sees both in seconds."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.jobs.support import broker_key, celery_worker, unique_key
from tests.support.processes import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SHORT = {"CELERY_VISIBILITY_TIMEOUT": "2", "CELERY_LEASE_INTERVAL": "0.5", "CELERY_RESTORE_INTERVAL": "0.5"}


def test_a_job_longer_than_the_visibility_timeout_runs_once(
    redis_broker: str, probe: Any, tmp_path: Path
) -> None:
    from videoplatform.celery import app

    key = unique_key("lease")
    broker = redis.Redis.from_url(redis_broker)
    with (
        celery_worker(redis_broker, tmp_path, queues="default", **SHORT) as first,
        celery_worker(redis_broker, tmp_path, queues="default", **SHORT) as second,
    ):
        app.send_task("jobstest.tasks.block", (key,))
        assert wait_until(lambda: probe.llen(f"{key}:started") == 1, timeout=30), first.tail() + second.tail()
        # Four visibility timeouts: without the lease the idle worker's sweep would hand it out again.
        time.sleep(8)
        assert probe.llen(f"{key}:started") == 1, first.tail() + second.tail()
        probe.set(f"{key}:release", 1)
        assert wait_until(lambda: probe.llen(f"{key}:finished") == 1, timeout=30)
        assert wait_until(lambda: broker.hlen(broker_key("unacked")) == 0, timeout=10)
    assert probe.llen(f"{key}:started") == 1
    assert probe.llen(f"{key}:finished") == 1


def test_the_job_of_a_killed_worker_runs_again_on_another(
    redis_broker: str, probe: Any, tmp_path: Path
) -> None:
    from videoplatform.celery import app

    key = unique_key("killed")
    broker = redis.Redis.from_url(redis_broker)
    with celery_worker(redis_broker, tmp_path, queues="default", **SHORT) as doomed:
        app.send_task("jobstest.tasks.block", (key,))
        assert wait_until(lambda: probe.llen(f"{key}:started") == 1, timeout=30), doomed.tail()
        doomed.kill()  # master and pool at once: nothing acknowledges, nothing hands it back
        assert broker.hlen(broker_key("unacked")) == 1
        with celery_worker(redis_broker, tmp_path, queues="default", **SHORT) as survivor:
            assert wait_until(lambda: probe.llen(f"{key}:started") == 2, timeout=60), survivor.tail()
            probe.set(f"{key}:release", 1)
            assert wait_until(lambda: probe.llen(f"{key}:finished") == 1, timeout=30), survivor.tail()
            assert wait_until(lambda: broker.hlen(broker_key("unacked")) == 0, timeout=10)
    assert probe.llen(f"{key}:finished") == 1
