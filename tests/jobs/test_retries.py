"""Transient failures are retried with exponential backoff; a task out of retries is recorded
as failed, with its error, for staff and in /metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.jobs.support import celery_worker, unique_key
from tests.support.processes import wait_until
from videoplatform.jobs import stats
from videoplatform.jobs.models import TaskFailure

pytestmark = pytest.mark.django_db(transaction=True)

FLAKY = "jobstest.tasks.index_flaky"


def _outcomes(task: str) -> dict[str, int]:
    return {outcome: count for queue, name, outcome, count in stats.outcome_counts() if name == task}


def test_transient_failures_are_retried_with_exponential_backoff_then_succeed_or_are_recorded(
    redis_broker: str, probe: Any, tmp_path: Path, staff_user: Any, client: Any
) -> None:
    from videoplatform.celery import app

    recovers, gives_up = unique_key("flaky"), unique_key("broken")
    with celery_worker(redis_broker, tmp_path, queues="indexing") as worker:
        app.send_task(FLAKY, (recovers, 2))
        app.send_task(FLAKY, (gives_up, 99))
        assert wait_until(lambda: TaskFailure.objects.filter(task_name=FLAKY).exists(), timeout=60), (
            worker.tail()
        )
        assert wait_until(lambda: _outcomes(FLAKY).get("succeeded") == 1, timeout=30), worker.tail()

    # Two failures, then success on the third attempt; backoff 0.2 s, then 0.4 s (base 0.2 here).
    attempts = [float(value) for value in probe.lrange(f"{recovers}:attempts", 0, -1)]
    assert len(attempts) == 3
    countdowns = [float(value) for value in probe.lrange(f"{recovers}:countdowns", 0, -1)]
    assert countdowns == [0.2, 0.4]
    assert all(
        later - earlier >= wait
        for earlier, later, wait in zip(attempts, attempts[1:], countdowns, strict=False)
    )

    # Indexing allows 3 retries: 4 attempts, then a recorded failure with the error.
    assert probe.llen(f"{gives_up}:attempts") == 4
    assert [float(value) for value in probe.lrange(f"{gives_up}:countdowns", 0, -1)] == [0.2, 0.4, 0.8, 1.6]
    failure = TaskFailure.objects.get(task_name=FLAKY)
    assert (failure.queue, failure.retries, failure.exception_type) == ("indexing", 3, "ConnectionError")
    assert "attempt 4 could not reach the service" in failure.message
    assert gives_up in failure.args
    assert _outcomes(FLAKY) == {"retried": 5, "succeeded": 1, "failed": 1}

    metrics = client.get("/metrics").content.decode()
    assert f'celery_task_outcomes_total{{outcome="failed",queue="indexing",task="{FLAKY}"}} 1.0' in metrics
    client.force_login(staff_user)
    page = client.get("/admin/jobs/taskfailure/")
    assert page.status_code == 200
    assert "attempt 4 could not reach the service" in page.content.decode()
