"""Jobs are enqueued when the write that causes them commits: a rolled-back transaction
enqueues nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from django.db import transaction

from accounts import services as account_services
from accounts.models import EmailDelivery
from tests.factories import UserFactory
from tests.jobs.support import RUN_PREFIX, broker_key
from videoplatform.jobs.stats import redis_priority_key
from videos import services as video_services

pytestmark = pytest.mark.django_db(transaction=True)


class Rollback(Exception):
    pass


def _queued(broker_url: str) -> list[tuple[str, str]]:
    client = redis.Redis.from_url(broker_url)
    found = []
    for key in client.scan_iter(f"{RUN_PREFIX}*"):
        if client.type(key) == b"list":
            queue = key.decode().removeprefix(RUN_PREFIX).split("\x06\x16")[0]
            found += [(queue, json.loads(raw)["headers"]["task"]) for raw in client.lrange(key, 0, -1)]
    return sorted(found)


def _drain(broker_url: str) -> None:
    client = redis.Redis.from_url(broker_url)
    for key in client.scan_iter(f"{RUN_PREFIX}*"):
        if client.type(key) == b"list":
            client.delete(key)


def test_a_video_write_enqueues_indexing_and_recommendations_only_when_it_commits(redis_broker: str) -> None:
    owner = UserFactory()
    with pytest.raises(Rollback), transaction.atomic():
        video_services.video_create(owner=owner, title="Never committed")
        raise Rollback
    assert _queued(redis_broker) == []

    video = video_services.video_create(owner=owner, title="Committed")
    assert _queued(redis_broker) == [
        ("indexing", "videos.tasks.index_video"),
        ("recommendation", "videos.tasks.recommend_video"),
    ]
    client = redis.Redis.from_url(redis_broker)
    assert json.loads(client.lrange(broker_key(redis_priority_key("indexing", 3)), 0, -1)[0])["headers"][
        "argsrepr"
    ] == repr((video.pk,))


def test_an_edit_that_does_not_touch_the_searched_text_enqueues_nothing(redis_broker: str) -> None:
    video = video_services.video_create(owner=UserFactory(), title="Cats")
    _drain(redis_broker)
    video_services.video_update(video=video, changes={"privacy": "unlisted"})
    assert _queued(redis_broker) == []
    video_services.video_update(video=video, changes={"title": "Dogs"})
    assert [queue for queue, _ in _queued(redis_broker)] == ["indexing", "recommendation"]


def test_a_rolled_back_registration_records_and_sends_no_welcome_email(redis_broker: str) -> None:
    with pytest.raises(Rollback), transaction.atomic():
        account_services.user_register(
            username="ghost", email="ghost@example.com", password="a-Long-passw0rd!"
        )
        raise Rollback
    assert _queued(redis_broker) == []
    assert not EmailDelivery.objects.exists()

    user = account_services.user_register(
        username="real", email="real@example.com", password="a-Long-passw0rd!"
    )
    assert _queued(redis_broker) == [("email", "accounts.tasks.send_email")]
    delivery = EmailDelivery.objects.get()
    assert (delivery.user_id, delivery.kind, delivery.status) == (user.pk, "welcome", "queued")


def test_a_broker_that_refuses_the_job_does_not_fail_the_committed_write(settings: Any) -> None:
    from tests.jobs.support import app_on_broker

    with app_on_broker("redis://127.0.0.1:1/0") as app:
        app.conf.broker_transport_options = {"max_retries": 0}
        app.conf.broker_connection_max_retries = 0
        app._after_fork()
        user = account_services.user_register(
            username="solo", email="solo@example.com", password="a-Long-passw0rd!"
        )
    # The account exists; its email waits, queued, for the resend job.
    assert EmailDelivery.objects.get(user_id=user.pk).status == "queued"
