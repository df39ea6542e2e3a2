"""Tasks reach their queue, with their queue's priority, by name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.jobs.support import app_on_broker, broker_key, celery_worker, unique_key
from tests.support.processes import wait_until
from videoplatform.jobs.stats import redis_priority_key

pytestmark = pytest.mark.django_db(transaction=True)

ROUTES = [
    # task name, queue, Redis priority step (0 is the highest)
    ("accounts.tasks.send_email", "email", 0),
    ("accounts.tasks.notify_user", "notification", 0),
    ("webhooks.tasks.deliver", "notification", 0),
    ("streaming.tasks.transcode_media_file", "transcoding", 3),
    ("videos.tasks.index_video", "indexing", 3),
    ("streaming.plays.flush_view_counts", "default", 3),
    ("subscriptions.tasks.expire_lapsed_subscriptions", "default", 3),
    ("videos.tasks.recommend_refresh", "recommendation", 6),
]


@pytest.mark.parametrize(("task", "queue", "step"), ROUTES)
def test_routes_give_each_task_its_queue_and_priority(task: str, queue: str, step: int) -> None:
    with app_on_broker("redis://127.0.0.1:6379/6") as app:
        route = app.amqp.router.route({}, task)
        assert (route["queue"].name, route["priority"]) == (queue, step)
    with app_on_broker("amqp://guest@127.0.0.1//") as app:
        # RabbitMQ counts the other way: 9 high, 5 mid, 1 low.
        route = app.amqp.router.route({}, task)
        assert (route["queue"].name, route["priority"]) == (queue, {0: 9, 3: 5, 6: 1}[step])


def test_a_priority_given_by_the_caller_wins() -> None:
    from videoplatform.celery import app

    assert app.amqp.router.route({"priority": 9}, "videos.tasks.recommend_refresh")["priority"] == 9


def _waiting(client: Any, queue: str, step: int) -> list[str]:
    key = broker_key(redis_priority_key(queue, step))
    return [json.loads(raw)["headers"]["task"] for raw in client.lrange(key, 0, -1)]


def test_messages_wait_in_their_queue_and_priority_list_until_a_worker_of_that_queue_takes_them(
    redis_broker: str, probe: Any, tmp_path: Path
) -> None:
    from videoplatform.celery import app

    key = unique_key("routing")
    app.send_task("jobstest.tasks.send_probe", (key, "mail"))
    app.send_task("jobstest.tasks.recommend_probe", (key, "related"))
    app.send_task("jobstest.tasks.probe", (key, "other"))
    broker = redis.Redis.from_url(redis_broker)
    assert _waiting(broker, "email", 0) == ["jobstest.tasks.send_probe"]
    assert _waiting(broker, "recommendation", 6) == ["jobstest.tasks.recommend_probe"]
    assert _waiting(broker, "default", 3) == ["jobstest.tasks.probe"]

    with celery_worker(redis_broker, tmp_path, queues="email") as worker:
        assert wait_until(lambda: probe.llen(key) == 1, timeout=30), worker.tail()
        assert wait_until(lambda: broker.hlen(broker_key("unacked")) == 0, timeout=30), (
            worker.tail()
        )  # acknowledged
    assert probe.lrange(key, 0, -1) == ["mail|email|0"]
    assert _waiting(broker, "email", 0) == []
    assert _waiting(broker, "recommendation", 6) == ["jobstest.tasks.recommend_probe"]
    assert _waiting(broker, "default", 3) == ["jobstest.tasks.probe"]
