"""/metrics exports the queues' depths, per priority, read from the broker at scrape time, so
an autoscaler can scale workers on queue length; a broker outage is a reading, not an error."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from tests.jobs.support import app_on_broker

pytestmark = pytest.mark.django_db


def samples(text: str, name: str) -> dict[str, float]:
    found = {}
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(\{{.*\}})? (\S+)", line)
        if match:
            found[match.group(1) or ""] = float(match.group(2))
    return found


def test_queue_depths_per_priority_are_read_from_the_broker(redis_broker: str, client: Client) -> None:
    from videoplatform.celery import app

    for _ in range(2):
        app.send_task("videos.tasks.recommend_video", ("vid_x",))
    app.send_task("accounts.tasks.send_email", ("eml_x",))
    app.send_task("videos.tasks.index_video", ("vid_x",), priority=0)  # a caller's own priority

    text = client.get("/metrics").content.decode()
    depths = samples(text, "celery_queue_length")
    assert depths['{priority="low",queue="recommendation"}'] == 2
    assert depths['{priority="high",queue="email"}'] == 1
    assert depths['{priority="high",queue="indexing"}'] == 1
    assert depths['{priority="mid",queue="indexing"}'] == 0
    assert sum(depths.values()) == 4
    assert samples(text, "celery_broker_up") == {"": 1.0}
    assert samples(text, "celery_queue_unacked") == {"": 0.0}


def test_an_unreachable_broker_reads_as_down(client: Client) -> None:
    with app_on_broker("redis://127.0.0.1:1/0"):
        response = client.get("/metrics")
    assert response.status_code == 200
    assert samples(response.content.decode(), "celery_broker_up") == {"": 0.0}


def test_staff_see_the_queues_on_the_schedule_page(
    redis_broker: str, client: Client, staff_user: Any
) -> None:
    from videoplatform.celery import app

    app.send_task("videos.tasks.recommend_video", ("vid_x",))
    client.force_login(staff_user)
    html = client.get("/admin/jobs/scheduledrun/").content.decode()
    assert "<td>recommendation</td><td>1</td>" in html
    assert "low: 1" in html


def test_a_superuser_can_run_a_scheduled_job_now(redis_broker: str, client: Client, staff_user: Any) -> None:
    import json

    import redis

    from tests.jobs.support import broker_key

    client.force_login(staff_user)
    response = client.post("/admin/jobs/scheduledrun/", {"job": "cache-warm"})
    assert response.status_code == 302
    queued = redis.Redis.from_url(redis_broker).lrange(broker_key("default\x06\x163"), 0, -1)
    headers = json.loads(queued[0])["headers"]
    assert headers["task"] == "videoplatform.jobs.tasks.warm_cache"
    assert headers["vp_beat_entry"] == "cache-warm"
    assert client.post("/admin/jobs/scheduledrun/", {"job": "nope"}).status_code == 302
    assert len(redis.Redis.from_url(redis_broker).lrange(broker_key("default\x06\x163"), 0, -1)) == 1
