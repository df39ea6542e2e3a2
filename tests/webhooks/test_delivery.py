"""Deliveries to a real HTTP receiver on loopback: signatures, retries, timeouts, order, disabling."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient
from standardwebhooks import Webhook, WebhookVerificationError

from accounts import emails
from accounts.models import EmailDelivery
from subscriptions import services as subscription_services
from tests.factories import PlanFactory, UserFactory
from tests.webhooks.conftest import run_due
from tests.webhooks.receiver import Receiver
from videoplatform import events
from videos import services as video_services
from webhooks import services
from webhooks.models import Attempt, Delivery, Endpoint, Event

pytestmark = pytest.mark.django_db

FAST_RETRIES = {"WEBHOOKS_RETRY_BASE": 0.1, "WEBHOOKS_RETRY_MAX_DELAY": 0.2}


def documented_verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The recipe of docs/webhooks.md, with the standard library alone."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(
        hmac.compare_digest(expected, sig.removeprefix("v1,")) for sig in headers["webhook-signature"].split()
    )


def test_an_event_arrives_signed_and_verifies_with_an_off_the_shelf_library(
    receiver: Receiver, endpoint_for: Any, user: Any
) -> None:
    endpoint = endpoint_for(user)
    with transaction.atomic():
        video = video_services.video_create(owner=user, title="Signed")
    assert run_due() == ["succeeded"]

    [request] = receiver.received()
    payload = Webhook(endpoint.secret).verify(request.body, request.headers)
    assert documented_verify(endpoint.secret, request.headers, request.body)
    event = Event.objects.get(public_id=request.id)
    assert payload["id"] == request.id == event.public_id and request.id.startswith("evt_")
    assert payload["type"] == "video.created"
    assert payload["timestamp"].endswith("Z")
    # The resource as the API shows it.
    shown = APIClient().get(f"/api/videos/{video.pk}").json()
    assert payload["data"] == shown
    assert request.headers["content-type"] == "application/json"
    # A tampered body or another secret does not verify.
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint.secret).verify(request.body.replace(b"Signed", b"Forged"), request.headers)
    other = services.endpoint_create(owner=user, url=receiver.url("/other"), events=["*"])
    with pytest.raises(WebhookVerificationError):
        Webhook(other.secret).verify(request.body, request.headers)


def test_a_ping_is_sent_when_an_endpoint_is_created(receiver: Receiver, user: Any) -> None:
    endpoint = services.endpoint_create(owner=user, url=receiver.url(), events=["video.ready"])
    assert run_due() == ["succeeded"]
    [ping] = receiver.received()
    assert Webhook(endpoint.secret).verify(ping.body, ping.headers)["type"] == "ping"
    assert ping.payload["data"]["endpoint_id"] == endpoint.pk


@override_settings(**FAST_RETRIES)
def test_500_then_200_is_delivered_twice_with_one_id_and_deduped(
    receiver: Receiver, endpoint_for: Any, user: Any
) -> None:
    endpoint_for(user)
    receiver.script("/hook", (500, 0))
    with transaction.atomic():
        video_services.video_create(owner=user, title="Retried")
    assert run_due() == ["retrying", "succeeded"]

    first, second = receiver.received()
    assert first.id == second.id  # the same event: the receiver dedupes by webhook-id
    secret = Endpoint.objects.get().secret
    assert Webhook(secret).verify(first.body, first.headers) == Webhook(secret).verify(
        second.body, second.headers
    )
    processed = {r.id: r.payload for r in receiver.received()}  # a receiver's dedupe
    assert len(processed) == 1
    delivery = Delivery.objects.get(event__public_id=first.id)
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("succeeded", 2, 200)
    assert list(delivery.attempt_log.values_list("response_status", flat=True)) == [500, 200]


def test_the_first_retry_comes_within_a_minute_and_retries_last_about_three_days() -> None:
    rng = random.Random(7)
    first = [services.retry_delay(1, rng=rng) for _ in range(200)]
    assert max(first) <= 60 and min(first) >= 10
    # Attempts until the 3-day window is used up, as the service schedules them.
    for seed in range(20):
        rng = random.Random(seed)
        elapsed, attempts = 0.0, 1
        while True:
            delay = services.retry_delay(attempts, rng=rng)
            if elapsed + delay > 3 * 86400:
                break
            elapsed += delay
            attempts += 1
        assert 2.5 * 86400 <= elapsed <= 3 * 86400, elapsed
        assert 15 <= attempts <= 30, attempts
    # Jitter: receivers that failed together are not retried together.
    assert len({round(services.retry_delay(5), 3) for _ in range(20)}) > 15


@override_settings(WEBHOOKS_TIMEOUT=0.5, **FAST_RETRIES)
def test_a_hanging_receiver_times_out_and_is_retried(
    receiver: Receiver, endpoint_for: Any, user: Any
) -> None:
    endpoint_for(user)
    receiver.script("/hook", (200, 3.0))  # answers after 3 s: too late
    with transaction.atomic():
        video_services.video_create(owner=user, title="Slow")
    assert run_due(wait=5) == ["retrying", "succeeded"]

    delivery = Delivery.objects.get(event__type="video.created")
    first, second = delivery.attempt_log.all()
    assert first.response_status is None and first.error.startswith("timed out")
    assert 400 <= first.duration_ms < 1500  # gave up at the timeout, not when the receiver answered
    assert second.response_status == 200 and delivery.status == "succeeded"


def test_a_disabled_endpoint_receives_nothing(receiver: Receiver, endpoint_for: Any, user: Any) -> None:
    endpoint = endpoint_for(user)
    with transaction.atomic():
        video_services.video_create(owner=user, title="Before")  # pending when it is turned off
    services.endpoint_update(endpoint=endpoint, changes={"active": False})
    with transaction.atomic():
        video_services.video_create(owner=user, title="After")
    assert run_due() == []

    assert receiver.received() == []
    assert (
        Delivery.objects.get(event__type="video.created").status == "failed"
    )  # the one pending; none for the later event
    assert Event.objects.filter(type="video.created").count() == 1


def test_events_are_sent_only_to_the_owner_and_only_of_the_types_asked_for(
    receiver: Receiver, endpoint_for: Any, user: Any, other_user: Any
) -> None:
    endpoint_for(user, "/mine-ready", events=["video.ready"])
    endpoint_for(user, "/mine-all")
    endpoint_for(other_user, "/theirs")
    with transaction.atomic():
        video_services.video_create(owner=user, title="Mine")
    run_due()
    assert [r.path for r in receiver.received()] == ["/mine-all"]


def test_no_event_for_a_rolled_back_transaction(receiver: Receiver, endpoint_for: Any, user: Any) -> None:
    endpoint_for(user)
    with pytest.raises(RuntimeError), transaction.atomic():
        video_services.video_create(owner=user, title="Rolled back")
        raise RuntimeError("the write fails after the event was published")
    assert run_due() == []
    assert receiver.received() == []
    assert not Event.objects.filter(type="video.created").exists()
    assert not Delivery.objects.filter(event__type="video.created").exists()


def test_a_committed_event_is_sent_once_the_transaction_commits(
    receiver: Receiver, endpoint_for: Any, user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    endpoint_for(user)
    with django_capture_on_commit_callbacks() as callbacks:
        video_services.video_create(owner=user, title="Committed")
    # The delivery's message is among what runs after the commit, not before.
    assert any("publish" in getattr(callback, "__name__", "") for callback in callbacks)
    assert Delivery.objects.filter(event__type="video.created", status="pending").count() == 1


@override_settings(**FAST_RETRIES)
def test_per_endpoint_and_resource_attempts_follow_the_order_of_events(
    receiver: Receiver, endpoint_for: Any, user: Any
) -> None:
    endpoint_for(user)
    with transaction.atomic():
        video = video_services.video_create(owner=user, title="First event fails once")
    video_id = video.pk
    receiver.script("/hook", (500, 0))
    with transaction.atomic():
        video_services.video_update(video=video, changes={"title": "x"})  # no event: not in the catalogue
        video_services.video_delete(video=video)
    with transaction.atomic():
        other = video_services.video_create(owner=user, title="Another resource")
    run_due()

    got = [(r.payload["type"], r.payload["data"]["id"]) for r in receiver.received()]
    # created (500), created again, then deleted: never deleted before created was delivered.
    mine = [entry for entry in got if entry[1] == video_id]
    assert mine == [("video.created", video_id), ("video.created", video_id), ("video.deleted", video_id)]
    # Another resource did not wait behind the failing one.
    assert got.index(("video.created", other.pk)) < got.index(("video.deleted", video_id))


@override_settings(WEBHOOKS_RETRY_WINDOW=0, WEBHOOKS_DISABLE_AFTER=3)
def test_an_endpoint_is_disabled_after_consecutive_failed_deliveries_and_its_owner_told(
    receiver: Receiver, endpoint_for: Any, user: Any
) -> None:
    endpoint = endpoint_for(user)
    receiver.script("/hook", *[(503, 0)] * 10)
    for n in range(2):
        with transaction.atomic():
            video_services.video_create(owner=user, title=f"Fails {n}")
    assert run_due() == ["failed", "failed"]
    endpoint.refresh_from_db()
    assert endpoint.active and endpoint.consecutive_failures == 2
    # A success in between starts the count again.
    receiver.script("/hook", (200, 0), *[(503, 0)] * 10)
    for n in range(4):
        with transaction.atomic():
            video_services.video_create(owner=user, title=f"Then {n}")
    assert run_due() == ["succeeded", "failed", "failed", "failed"]

    endpoint.refresh_from_db()
    assert not endpoint.active and "3 deliveries in a row failed" in endpoint.disabled_reason
    email = EmailDelivery.objects.get(kind="webhook_disabled")
    assert email.to == user.email and endpoint.url in str(email.context)
    subject, text, html = emails.email_render(kind=email.kind, context=email.context)
    assert subject == "A webhook endpoint was disabled"
    assert endpoint.url in text and endpoint.url in html and "3 deliveries in a row failed" in text
    # Nothing more reaches it.
    before = len(receiver.received())
    with transaction.atomic():
        video_services.video_create(owner=user, title="Ignored")
    run_due()
    assert len(receiver.received()) == before
    # Its owner turns it back on: events flow again and the count starts afresh.
    services.endpoint_update(endpoint=endpoint, changes={"active": True})
    endpoint.refresh_from_db()
    assert endpoint.active and endpoint.consecutive_failures == 0 and endpoint.disabled_reason == ""


def test_a_rolled_secret_verifies_with_both_during_the_overlap(
    receiver: Receiver, endpoint_for: Any, user: Any
) -> None:
    endpoint = endpoint_for(user)
    old = endpoint.secret
    endpoint = services.endpoint_roll_secret(endpoint=endpoint)
    new = endpoint.secret
    assert new != old and new.startswith("whsec_")
    with transaction.atomic():
        video_services.video_create(owner=user, title="During the overlap")
    run_due()
    [during] = receiver.received()
    assert Webhook(old).verify(during.body, during.headers)["type"] == "video.created"
    assert Webhook(new).verify(during.body, during.headers)["type"] == "video.created"

    # After the overlap only the new secret signs.
    Endpoint.objects.filter(pk=endpoint.pk).update(
        previous_secret_expires_at=timezone.now() - timedelta(seconds=1)
    )
    with transaction.atomic():
        video_services.video_create(owner=user, title="After the overlap")
    run_due()
    after = receiver.received()[-1]
    assert Webhook(new).verify(after.body, after.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(after.body, after.headers)


def test_subscription_events(receiver: Receiver, endpoint_for: Any, user: Any) -> None:
    endpoint_for(user)
    basic, premium = PlanFactory(), PlanFactory()
    first = subscription_services.subscription_create(user=user, plan=basic)
    second = subscription_services.subscription_create(user=user, plan=premium)  # replaces the first
    subscription_services.subscription_cancel(subscription=second)
    run_due()
    got = [(r.payload["type"], r.payload["data"]["id"]) for r in receiver.received()]
    assert got == [
        ("subscription.created", first.pk),
        ("subscription.canceled", first.pk),
        ("subscription.created", second.pk),
        ("subscription.canceled", second.pk),
    ]
    assert receiver.received()[-1].payload["data"]["cancel_at_period_end"] is True


@override_settings(WEBHOOKS_ALLOW_PRIVATE_TARGETS=False)
def test_a_private_target_is_refused_at_delivery_time(receiver: Receiver, user: Any) -> None:
    """A URL that passed (its host resolved elsewhere then) is checked again when sent: no request."""
    with override_settings(WEBHOOKS_ALLOW_PRIVATE_TARGETS=True):
        endpoint = services.endpoint_create(
            owner=user, url=f"http://localhost:{receiver.port}/hook", events=["*"]
        )
    assert run_due() == ["retrying"]
    assert receiver.received() == []
    attempt = Attempt.objects.get(delivery__endpoint=endpoint)
    assert attempt.response_status is None and attempt.error.startswith("refused:")
    assert "127.0.0.1" in attempt.error or "::1" in attempt.error


def test_unknown_event_types_are_a_bug() -> None:
    with pytest.raises(ValueError, match="Unknown event type"):
        events.publish_on_commit("video.exploded", UserFactory.build())
