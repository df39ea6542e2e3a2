"""Priorities really work on the broker: with one worker busy, many low-priority jobs queued
and then a high one, the high one runs next."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection

from tests.jobs.support import AMQP_URL, app_on_broker, celery_worker, unique_key
from tests.support.processes import wait_until
from videoplatform.jobs.priorities import Level, priority_for
from videoplatform.jobs.queues import QUEUE_NAMES

pytestmark = pytest.mark.django_db(transaction=True)


def _labels(probe: Any, key: str) -> list[str]:
    return [entry.split("|")[0] for entry in probe.lrange(key, 0, -1)]


def _hold_the_worker(app: Any, probe: Any, key: str) -> None:
    app.send_task("jobstest.tasks.block", (key,))
    assert wait_until(lambda: probe.llen(f"{key}:started") == 1, timeout=30)


def test_redis_high_priority_job_overtakes_queued_low_priority_jobs(
    redis_broker: str, probe: Any, tmp_path: Path
) -> None:
    key = unique_key("order")
    with celery_worker(redis_broker, tmp_path, queues="email,default,recommendation") as worker:
        from videoplatform.celery import app

        _hold_the_worker(app, probe, key)
        # Routed by name: recommendation (low), default (mid), then email (high), enqueued last.
        for index in range(10):
            app.send_task("jobstest.tasks.recommend_probe", (key, f"low{index}"))
        for index in range(3):
            app.send_task("jobstest.tasks.probe", (key, f"mid{index}"))
        app.send_task("jobstest.tasks.send_probe", (key, "high"))
        probe.set(f"{key}:release", 1)
        assert wait_until(lambda: probe.llen(key) == 14, timeout=60), worker.tail()

    assert _labels(probe, key) == ["high", "mid0", "mid1", "mid2", *(f"low{index}" for index in range(10))]
    queues = {entry.split("|")[0]: entry.split("|")[1] for entry in probe.lrange(key, 0, -1)}
    assert (queues["high"], queues["mid0"], queues["low0"]) == ("email", "default", "recommendation")


def test_redis_priorities_order_jobs_within_one_queue(redis_broker: str, probe: Any, tmp_path: Path) -> None:
    from videoplatform.celery import app

    key = unique_key("order")
    low, high = priority_for(Level.LOW, redis_broker), priority_for(Level.HIGH, redis_broker)
    with celery_worker(redis_broker, tmp_path, queues="default") as worker:
        _hold_the_worker(app, probe, key)
        for index in range(10):
            app.send_task("jobstest.tasks.probe", (key, f"low{index}"), priority=low)
        for index in range(3):
            app.send_task("jobstest.tasks.probe", (key, f"mid{index}"))  # the route's: mid
        app.send_task("jobstest.tasks.probe", (key, "high"), priority=high)
        probe.set(f"{key}:release", 1)
        assert wait_until(lambda: probe.llen(key) == 14, timeout=60), worker.tail()

    assert _labels(probe, key) == ["high", "mid0", "mid1", "mid2", *(f"low{index}" for index in range(10))]


@pytest.fixture
def rabbitmq() -> Any:
    def delete_queues() -> None:
        with Connection(AMQP_URL, connect_timeout=5) as connection:
            for name in QUEUE_NAMES:
                with contextlib.suppress(*connection.channel_errors):
                    connection.channel().queue_delete(name)

    delete_queues()
    with app_on_broker(AMQP_URL) as app:
        yield app
    delete_queues()


def test_rabbitmq_high_priority_job_overtakes_queued_low_priority_jobs(
    rabbitmq: Any, probe: Any, tmp_path: Path
) -> None:
    key = unique_key("order")
    low, high = priority_for(Level.LOW, AMQP_URL), priority_for(Level.HIGH, AMQP_URL)
    with celery_worker(AMQP_URL, tmp_path, queues="default") as worker:
        _hold_the_worker(rabbitmq, probe, key)
        # One queue: RabbitMQ orders by priority within a queue (x-max-priority).
        for index in range(10):
            rabbitmq.send_task("jobstest.tasks.probe", (key, f"low{index}"), priority=low)
        for index in range(3):
            rabbitmq.send_task("jobstest.tasks.probe", (key, f"mid{index}"))  # the route's: mid
        rabbitmq.send_task("jobstest.tasks.probe", (key, "high"), priority=high)
        probe.set(f"{key}:release", 1)
        assert wait_until(lambda: probe.llen(key) == 14, timeout=60), worker.tail()

    assert _labels(probe, key) == ["high", "mid0", "mid1", "mid2", *(f"low{index}" for index in range(10))]
