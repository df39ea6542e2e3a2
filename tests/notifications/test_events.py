"""Events fill the owner's inbox (queue ``notification``) and send an email (queue ``email``):
video ready, transcoding failed, subscription started and canceled, welcome on registration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from accounts.models import EmailDelivery, Notification
from streaming import services as media_services
from streaming.models import MediaFile
from tests.conftest import login_client
from tests.factories import PlanFactory, UserFactory, VideoFactory
from tests.jobs.support import celery_worker
from tests.support.processes import wait_until
from videos.models import Video

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def worker(redis_broker: str, tmp_path: Path) -> Any:
    with celery_worker(redis_broker, tmp_path, queues="email,notification") as process:
        yield process


def _delivered(user: Any, kind: str) -> tuple[Notification, EmailDelivery]:
    assert wait_until(
        lambda: (
            Notification.objects.filter(user=user, kind=kind).exists()
            and EmailDelivery.objects.filter(user=user, kind=kind, status="sent").exists()
        ),
        timeout=30,
    ), f"no {kind} notification and email for {user.pk}"
    return Notification.objects.get(user=user, kind=kind), EmailDelivery.objects.get(user=user, kind=kind)


def test_video_ready_tells_the_owner_in_the_inbox_and_by_email(worker: Any) -> None:
    owner = UserFactory()
    video = VideoFactory(owner=owner, title="Sunset timelapse", ready=True)
    media_services.notify_owner_video_ready(video)  # what the pipeline calls once the ladder is ready

    notification, email = _delivered(owner, "video_ready")
    assert notification.data == {"video_id": video.pk}
    assert "Sunset timelapse" in notification.title
    assert email.to == owner.email and email.subject == 'Your video "Sunset timelapse" is ready'
    inbox = login_client(owner).get("/api/notifications?unread=true").json()
    assert [(item["kind"], item["data"]) for item in inbox["data"]] == [
        ("video_ready", {"video_id": video.pk})
    ]


def test_a_failed_transcode_tells_the_owner_why_but_a_refused_upload_does_not(worker: Any) -> None:
    owner = UserFactory()
    refused = VideoFactory(owner=owner, status=Video.Status.AWAITING_UPLOAD)
    refused_file = MediaFile.objects.create(video=refused, source_path="videos/x/source/a.txt")
    media_services.media_file_mark_failed(media_file_id=refused_file.pk, message="Not a video file.")  # a 422

    video = VideoFactory(owner=owner, title="Holiday", status=Video.Status.PROCESSING)
    media_file = MediaFile.objects.create(
        video=video, source_path="videos/y/source/a.mp4", status=MediaFile.Status.PROCESSING
    )
    media_services.media_file_mark_failed(
        media_file_id=media_file.pk, message="Gave up after 4 attempts: disk full"
    )

    notification, email = _delivered(owner, "transcoding_failed")
    assert notification.data == {"video_id": video.pk}
    assert "disk full" in notification.body
    assert email.context["error"] == "Gave up after 4 attempts: disk full"
    assert Notification.objects.filter(user=owner).count() == 1


def test_subscription_started_and_canceled(worker: Any) -> None:
    subscriber = UserFactory()
    PlanFactory(code="gold", name="Gold")
    client = login_client(subscriber)
    assert client.post("/api/subscriptions", {"plan": "gold"}, format="json").status_code == 201
    started, _ = _delivered(subscriber, "subscription_started")
    assert started.title == "Your Gold subscription has started"

    assert client.post("/api/subscriptions/me/cancel").status_code == 200
    canceled, email = _delivered(subscriber, "subscription_canceled")
    assert canceled.data["plan"] == "gold"
    assert email.subject == "Your Gold subscription has been canceled"


def test_a_declined_subscription_notifies_no_one(worker: Any, settings: Any) -> None:
    settings.SUBSCRIPTIONS_PAYMENT_GATEWAY = "tests.subscriptions.gateways.DecliningGateway"
    subscriber = UserFactory()
    PlanFactory(code="silver")
    response = login_client(subscriber).post("/api/subscriptions", {"plan": "silver"}, format="json")
    assert response.status_code == 402
    assert not EmailDelivery.objects.filter(user=subscriber).exists()
    # A later event goes through the same queue: once it has arrived, anything queued by the
    # declined attempt would have arrived before it.
    owner = UserFactory()
    media_services.notify_owner_video_ready(VideoFactory(owner=owner, ready=True))
    _delivered(owner, "video_ready")
    assert not Notification.objects.filter(user=subscriber).exists()


def test_registration_sends_a_welcome_email(worker: Any, api_client: Any) -> None:
    response = api_client.post(
        "/api/auth/register",
        {"username": "newcomer", "email": "newcomer@example.com", "password": "a-Long-passw0rd!"},
        format="json",
    )
    assert response.status_code == 201
    assert wait_until(
        lambda: EmailDelivery.objects.filter(kind="welcome", status="sent").exists(), timeout=30
    )
    email = EmailDelivery.objects.get(kind="welcome")
    assert (email.to, email.subject, email.attempts) == (
        "newcomer@example.com",
        "Welcome to videoplatform, newcomer",
        1,
    )
