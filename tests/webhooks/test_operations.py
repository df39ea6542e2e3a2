"""What operators see and rely on: metrics, the admin pages, the sweeper, and a real worker on the
``notification`` queue delivering an event of a write made through the API."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction
from django.test import Client, override_settings
from django.utils import timezone
from rest_framework.test import APIClient
from standardwebhooks import Webhook

from tests.jobs.support import BROKER_URL, app_on_broker, celery_worker, flush_redis
from tests.jobs.test_metrics import samples
from tests.support.processes import wait_until
from tests.webhooks.conftest import run_due
from tests.webhooks.receiver import Receiver
from videoplatform.jobs.queues import queue_for
from videos import services as video_services
from webhooks import services
from webhooks.models import Delivery, Endpoint


@pytest.mark.django_db
def test_metrics_count_attempts_and_show_the_backlog(
    receiver: Receiver, endpoint_for: Any, user: Any, client: Client
) -> None:
    endpoint_for(user)
    receiver.script("/hook", (500, 0))
    with transaction.atomic():
        video_services.video_create(owner=user, title="Counted")
    assert run_due(wait=0) == ["retrying"]

    text = client.get("/metrics").content.decode()
    assert samples(text, "webhook_attempts_total")['{result="5xx"}'] >= 1
    assert samples(text, "webhook_deliveries_total")['{result="created"}'] >= 1
    assert samples(text, "webhook_deliveries_pending") == {"": 1.0}
    assert samples(text, "webhook_deliveries_due") == {"": 0.0}  # its retry is later
    assert samples(text, "webhook_attempt_duration_seconds_count")[""] >= 1
    assert samples(text, "webhook_first_attempt_delay_seconds_count")[""] >= 1
    assert samples(text, "webhook_events_total")['{type="video.created"}'] >= 1


@pytest.mark.django_db
def test_staff_pages_show_endpoints_and_the_delivery_log_and_redeliver(
    receiver: Receiver, endpoint_for: Any, user: Any, staff_user: Any, client: Client
) -> None:
    endpoint = endpoint_for(user)
    receiver.script("/hook", (418, 0))
    with transaction.atomic():
        video_services.video_create(owner=user, title="Staff look")
    run_due(wait=0)
    delivery = Delivery.objects.get(event__type="video.created")
    client.force_login(staff_user)
    endpoints_page = client.get("/admin/webhooks/endpoint/").content.decode()
    assert endpoint.url in endpoints_page
    assert (
        endpoint.secret not in client.get(f"/admin/webhooks/endpoint/{endpoint.pk}/change/").content.decode()
    )
    log = client.get("/admin/webhooks/delivery/?status=pending").content.decode()
    assert delivery.pk in log and "video.created" in log
    detail = client.get(f"/admin/webhooks/delivery/{delivery.pk}/change/").content.decode()
    assert "418" in detail and "answered 418" in detail  # the attempt and the receiver's answer

    Delivery.objects.filter(pk=delivery.pk).update(status="failed", next_attempt_at=None)
    response = client.post(
        "/admin/webhooks/delivery/", {"action": "redeliver", "_selected_action": [delivery.pk]}, follow=True
    )
    assert response.status_code == 200 and "sent again" in response.content.decode()
    run_due(wait=0)
    delivery.refresh_from_db()
    assert delivery.status == "succeeded" and delivery.attempts == 2


@pytest.mark.django_db
def test_the_sweeper_resends_lost_messages_and_due_retries_first_in_line_only(
    receiver: Receiver, endpoint_for: Any, user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    endpoint_for(user)
    with transaction.atomic():
        video = video_services.video_create(owner=user, title="Lost message")
        video_services.video_delete(video=video)
    long_ago = timezone.now() - timedelta(hours=1)
    Delivery.objects.filter(status="pending").update(queued_at=long_ago)  # their messages were lost
    with django_capture_on_commit_callbacks() as sent:
        assert services.deliveries_requeue_due() == 1  # created; deleted waits behind it
    assert len(sent) == 1
    with django_capture_on_commit_callbacks():
        assert services.deliveries_requeue_due() == 0  # just sent: not again
    run_due()
    assert [r.payload["type"] for r in receiver.received()] == ["video.created", "video.deleted"]


def test_webhook_tasks_run_on_the_notification_queue() -> None:
    assert queue_for("webhooks.tasks.deliver") == "notification"
    assert queue_for("webhooks.tasks.requeue_due_deliveries") == "notification"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@override_settings(WEBHOOKS_RETRY_BASE=0.5)
def test_a_worker_delivers_an_api_write_and_retries_on_its_own(
    receiver: Receiver, user: Any, user_client: APIClient, tmp_path: Path
) -> None:
    """Through the broker: the commit enqueues, a worker consuming only ``notification`` attempts,
    the 500 is retried by a delayed message, the receiver verifies both."""
    flush_redis(BROKER_URL)
    with (
        app_on_broker(BROKER_URL),
        celery_worker(BROKER_URL, tmp_path, queues="notification", WEBHOOKS_RETRY_BASE="0.5") as worker,
    ):
        created = user_client.post(
            "/api/webhooks", {"url": receiver.url(), "events": ["video.created"]}, format="json"
        ).json()
        assert wait_until(lambda: len(receiver.received()) == 1, timeout=30), worker.tail()
        receiver.script("/hook", (500, 0))
        response = user_client.post("/api/videos", {"title": "Through the worker"}, format="json")
        assert response.status_code == 201, response.content
        assert wait_until(lambda: len(receiver.received()) == 3, timeout=30), worker.tail()
    flush_redis(BROKER_URL)
    ping, failed, retried = receiver.received()
    assert ping.payload["type"] == "ping"
    assert failed.id == retried.id and retried.payload["data"]["id"] == response.json()["id"]
    assert Webhook(created["secret"]).verify(retried.body, retried.headers)["type"] == "video.created"
    delivery = Delivery.objects.get(event__public_id=retried.id)
    assert (delivery.status, delivery.attempts) == ("succeeded", 2)
    assert Endpoint.objects.get().consecutive_failures == 0
