"""Writes: endpoints, the events recorded for them, and their delivery (docs/webhooks.md).

- ``event_record`` is subscribed to the platform's domain events (``videoplatform.events``): inside
  the publishing transaction it records the event and one delivery per active endpoint of the
  resource's owner that wants its type (a transactional outbox), and enqueues them on commit.
- ``delivery_attempt`` (the ``notification`` queue) makes one signed POST and records it: success on a
  2xx within ``WEBHOOKS_TIMEOUT``; otherwise a retry with exponential backoff and jitter until
  ``retry_until`` (about 3 days), then the delivery has failed. ``WEBHOOKS_DISABLE_AFTER`` deliveries
  failed in a row disable the endpoint and tell its owner.
- Per endpoint and resource, deliveries are attempted in event order: one waits while an earlier one
  is pending, and the one that completes starts the next.
- At least once: a lost message is sent again by ``deliveries_requeue_due`` (beat); a worker that
  dies mid-attempt loses its lease. Receivers dedupe by the event id (the ``webhook-id`` header).
"""

from __future__ import annotations

import json
import logging
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import DateTimeField, Exists, F, OuterRef, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from videoplatform.db.routing import use_primary
from videoplatform.events import EVENT_TYPES, DomainEvent
from videoplatform.ids import new_id
from videoplatform.jobs.enqueue import enqueue_on_commit, task_named

from . import metrics, resources, signing, targets
from .exceptions import (
    DeliveryInProgress,
    EndpointDisabled,
    EndpointLimitReached,
    InvalidTarget,
    UnknownEventType,
)
from .models import ALL_EVENTS, Attempt, Delivery, Endpoint, Event

logger = logging.getLogger(__name__)

PING = "ping"
MAX_EVENT_TYPES = 50
# A message may arrive this much before its attempt's time (clocks of two hosts) and still run it.
EARLY_TOLERANCE = timedelta(seconds=2)
Outcome = str


# --- Endpoints -------------------------------------------------------------------------------------


def event_types_check(events: Any) -> list[str]:
    """The event types an endpoint asks for, de-duplicated; ``["*"]`` is every type."""
    if not isinstance(events, list) or not events or len(events) > MAX_EVENT_TYPES:
        raise UnknownEventType(f'Give a list of 1 to {MAX_EVENT_TYPES} event types, or ["*"] for all.')
    known = {*EVENT_TYPES, ALL_EVENTS}
    unknown = [str(name) for name in events if not isinstance(name, str) or name not in known]
    if unknown:
        raise UnknownEventType(
            f"Unknown event type(s): {', '.join(unknown)}. Known: {', '.join(EVENT_TYPES)}, or *."
        )
    return list(dict.fromkeys(events))


def url_check(url: str) -> str:
    try:
        return targets.url_check(url)
    except targets.TargetRefused as exc:
        raise InvalidTarget(exc.message, code=exc.code) from exc


def endpoint_create(*, owner: Any, url: str, events: list[str], active: bool = True) -> Endpoint:
    """A new endpoint with a new secret (``endpoint.secret``: show it once); a ``ping`` is sent to it.

    Raises InvalidTarget, UnknownEventType, EndpointLimitReached.
    """
    url = url_check(url)
    events = event_types_check(events)
    with transaction.atomic():
        # One user's creations run one after the other, so the limit holds.
        list(get_user_model().objects.select_for_update(no_key=True).filter(pk=owner.pk).values_list("pk"))
        if Endpoint.objects.filter(owner_id=owner.pk).count() >= settings.WEBHOOKS_MAX_ENDPOINTS_PER_USER:
            raise EndpointLimitReached()
        endpoint = Endpoint.objects.create(
            owner_id=owner.pk, url=url, events=events, active=active, secret=signing.secret_new()
        )
        if active:
            _ping(endpoint)
    return endpoint


def endpoint_update(*, endpoint: Endpoint, changes: dict[str, Any]) -> Endpoint:
    """Changes ``url``, ``events`` and/or ``active``. Turning an endpoint back on clears its failure
    count; turning it off fails its pending deliveries (they can be redelivered later).

    Raises InvalidTarget, UnknownEventType.
    """
    if "url" in changes:
        changes["url"] = url_check(changes["url"])
    if "events" in changes:
        changes["events"] = event_types_check(changes["events"])
    with transaction.atomic():
        locked = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
        fields: set[str] = set()
        for name in ("url", "events", "active"):
            if name in changes and getattr(locked, name) != changes[name]:
                setattr(locked, name, changes[name])
                fields.add(name)
        if "active" in fields and locked.active:
            locked.consecutive_failures = 0
            locked.disabled_reason = ""
            fields |= {"consecutive_failures", "disabled_reason"}
        if fields:
            locked.save(update_fields=[*fields, "updated_at"])
        if "active" in fields and not locked.active:
            _fail_pending(locked.pk, "The endpoint was turned off by its owner.")
    return locked


def endpoint_delete(*, endpoint: Endpoint) -> None:
    """Deletes the endpoint with its delivery log (events of other endpoints stay)."""
    Endpoint.objects.filter(pk=endpoint.pk).delete()


def endpoint_roll_secret(*, endpoint: Endpoint, now: datetime | None = None) -> Endpoint:
    """A new secret (``endpoint.secret``: show it once). The old one keeps signing, beside the new
    one, for ``WEBHOOKS_SECRET_OVERLAP`` seconds so that receivers can switch."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
        locked.previous_secret = locked.secret
        locked.previous_secret_expires_at = now + timedelta(seconds=settings.WEBHOOKS_SECRET_OVERLAP)
        locked.secret = signing.secret_new()
        locked.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at", "updated_at"])
    return locked


def signing_secrets(endpoint: Endpoint, now: datetime) -> list[str]:
    """The secrets that sign a message now: the current one, and the previous during its overlap."""
    valid = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > now:
        valid.append(endpoint.previous_secret)
    return valid


# --- Recording events ------------------------------------------------------------------------------


def _body(public_id: str, event_type: str, occurred_at: datetime, data: dict[str, Any]) -> str:
    # The Standard Webhooks payload: type, timestamp, data (and the event id, for convenience).
    timestamp = occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    payload = {"id": public_id, "type": event_type, "timestamp": timestamp, "data": data}
    return json.dumps(payload, cls=DjangoJSONEncoder, separators=(",", ":"), ensure_ascii=False)


def _create_deliveries(event: Event, endpoints: list[Endpoint], resource_key: str) -> list[Delivery]:
    now = timezone.now()
    window = timedelta(seconds=settings.WEBHOOKS_RETRY_WINDOW)
    deliveries = Delivery.objects.bulk_create(
        Delivery(
            id=new_id("whd"),
            endpoint=endpoint,
            event=event,
            resource_key=resource_key,
            next_attempt_at=now,
            retry_until=now + window,
            queued_at=now,
            created_at=now,
        )
        for endpoint in endpoints
    )
    for delivery in deliveries:
        _enqueue(delivery.pk)
    return deliveries


@use_primary
def event_record(domain_event: DomainEvent) -> Event | None:
    """Subscriber of ``videoplatform.events``: records the event and its deliveries in the publishing
    transaction (nothing when no active endpoint of the owner wants it); sends them after the commit."""
    kind = resources.kind_of(domain_event.resource_label)
    if kind is None:
        return None
    owner_id = kind.owner_id(domain_event.resource)
    endpoints = [
        endpoint
        for endpoint in Endpoint.objects.filter(owner_id=owner_id, active=True).only("id", "events")
        if endpoint.wants(domain_event.type)
    ]
    if not endpoints:
        return None
    resource_id = str(domain_event.resource.pk)
    data = kind.render(domain_event.resource)
    event = Event.objects.create(
        public_id=domain_event.id,
        type=domain_event.type,
        owner_id=owner_id,
        resource_type=kind.name,
        resource_id=resource_id,
        occurred_at=domain_event.occurred_at,
        body=_body(domain_event.id, domain_event.type, domain_event.occurred_at, data),
    )
    _create_deliveries(event, endpoints, f"{kind.name}:{resource_id}")
    metrics.event_recorded(domain_event.type, len(endpoints))
    return event


def _ping(endpoint: Endpoint) -> Delivery:
    now = timezone.now()
    public_id = new_id("evt")
    data = {"endpoint_id": endpoint.pk, "url": endpoint.url, "events": endpoint.events}
    event = Event.objects.create(
        public_id=public_id,
        type=PING,
        owner_id=endpoint.owner_id,
        resource_type="webhook_endpoint",
        resource_id=endpoint.pk,
        occurred_at=now,
        body=_body(public_id, PING, now, data),
    )
    return _create_deliveries(event, [endpoint], f"webhook_endpoint:{endpoint.pk}")[0]


# --- Delivering ------------------------------------------------------------------------------------


def _enqueue(delivery_id: str, countdown: float = 0) -> None:
    """The attempt's message, after the commit; a broker that refuses it is logged (the sweeper
    sends the message again after ``WEBHOOKS_REQUEUE_AFTER``), as ``enqueue_on_commit`` does."""
    deliver = "webhooks.tasks.deliver"  # by name: the tasks import this module
    if countdown <= 0:
        enqueue_on_commit(deliver, delivery_id)
        return

    def publish() -> None:
        try:
            task_named(deliver).apply_async((delivery_id,), countdown=countdown)
        except Exception:
            logger.exception("could not enqueue the retry of webhook delivery %s", delivery_id)

    transaction.on_commit(publish)


def retry_delay(attempts_in_round: int, *, rng: random.Random | None = None) -> float:
    """Seconds before the next attempt after ``attempts_in_round`` failed ones: exponential from
    ``WEBHOOKS_RETRY_BASE`` up to ``WEBHOOKS_RETRY_MAX_DELAY``, with "equal jitter" (between half and
    all of it), so that receivers that failed together are not retried together.

    With the defaults (40 s, 6 h): 20-40 s, 40-80 s, 80-160 s, ... 3-6 h, which fills the 3-day
    window with about 20 attempts.
    """
    ceiling = min(
        float(settings.WEBHOOKS_RETRY_MAX_DELAY),
        float(settings.WEBHOOKS_RETRY_BASE) * 2 ** max(0, attempts_in_round - 1),
    )
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


def _start_next(endpoint_id: str, resource_key: str) -> None:
    """After a delivery completes: the next pending one of its endpoint and resource, if due, now."""
    now = timezone.now()
    following = (
        Delivery.objects.filter(
            endpoint_id=endpoint_id, resource_key=resource_key, status=Delivery.Status.PENDING
        )
        .order_by("event_id")
        .values_list("pk", "next_attempt_at")
        .first()
    )
    if following is not None and (following[1] is None or following[1] <= now):
        Delivery.objects.filter(pk=following[0]).update(queued_at=now)
        _enqueue(following[0])


def _fail_pending(endpoint_id: str, reason: str) -> int:
    now = timezone.now()
    return Delivery.objects.filter(endpoint_id=endpoint_id, status=Delivery.Status.PENDING).update(
        status=Delivery.Status.FAILED,
        completed_at=now,
        next_attempt_at=None,
        queued_at=None,
        lease_until=None,
        last_error=reason[:500],
    )


def _earlier_pending_q() -> Exists:
    return Exists(
        Delivery.objects.filter(
            endpoint_id=OuterRef("endpoint_id"),
            resource_key=OuterRef("resource_key"),
            status=Delivery.Status.PENDING,
            event_id__lt=OuterRef("event_id"),
        )
    )


def _claim(delivery_id: str, now: datetime) -> tuple[Delivery | None, Outcome]:
    """Takes the delivery for one attempt, or says why not.

    One conditional UPDATE takes it (its own columns in the WHERE clause, so that of two workers
    racing for it, the second sees the first's lease when PostgreSQL re-checks the row): pending,
    not leased, due, its endpoint active, no earlier delivery of its endpoint and resource pending.
    """
    lease = now + timedelta(seconds=settings.WEBHOOKS_TIMEOUT + 25)
    claimed = (
        Delivery.objects.filter(pk=delivery_id, status=Delivery.Status.PENDING)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lte=now))
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now + EARLY_TOLERANCE))
        .filter(Exists(Endpoint.objects.filter(pk=OuterRef("endpoint_id"), active=True)))
        .filter(~_earlier_pending_q())
        .update(
            attempts=F("attempts") + 1,
            lease_until=lease,
            last_attempt_at=now,
            first_attempt_at=Coalesce("first_attempt_at", Value(now, output_field=DateTimeField())),
        )
    )
    if claimed:
        return Delivery.objects.select_related("endpoint", "event").get(pk=delivery_id), "claimed"
    # Not taken: say why (rare, so the extra reads are fine).
    delivery = Delivery.objects.select_related("endpoint").filter(pk=delivery_id).first()
    if delivery is None:
        return None, "gone"
    if delivery.status != Delivery.Status.PENDING:
        return None, "done"
    if delivery.lease_until is not None and delivery.lease_until > now:
        return None, "in_flight"
    if delivery.next_attempt_at is not None and delivery.next_attempt_at > now + EARLY_TOLERANCE:
        return None, "not_due"  # a duplicate or early message: the due one (or the sweeper) follows
    if not delivery.endpoint.active:
        _fail_pending(delivery.endpoint_id, "The endpoint is disabled.")
        return None, "endpoint_disabled"
    # An earlier one is pending: it starts this one when it completes.
    Delivery.objects.filter(pk=delivery_id, status=Delivery.Status.PENDING).update(queued_at=None)
    return None, "waiting"


def _headers(delivery: Delivery, body: bytes, now: datetime) -> dict[str, str]:
    timestamp = int(time.time())
    msg_id = delivery.event.public_id
    return {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signing.signature_header(
            signing_secrets(delivery.endpoint, now), msg_id=msg_id, timestamp=timestamp, body=body
        ),
    }


@use_primary  # the delivery state moves with every attempt: never a replica's copy
def delivery_attempt(*, delivery_id: str) -> Outcome:
    """One attempt of a delivery, if it is due and first in line (see the module docstring).

    Returns what happened: succeeded, retrying, failed, or why no attempt was made (done,
    in_flight, not_due, waiting, endpoint_disabled, gone).
    """
    now = timezone.now()
    delivery, outcome = _claim(delivery_id, now)
    if delivery is None:
        return outcome
    if delivery.attempts == 1:
        metrics.first_attempt(delay=(now - delivery.event.occurred_at).total_seconds())
    body = delivery.event.body.encode()
    response = targets.post(
        delivery.endpoint.url, body, _headers(delivery, body, now), timeout=float(settings.WEBHOOKS_TIMEOUT)
    )
    outcome = _attempt_record(delivery, now, response)
    metrics.attempt_made(response, outcome)
    return outcome


def _attempt_record(delivery: Delivery, started_at: datetime, response: targets.Response) -> Outcome:
    """Records the attempt and its outcome, if the delivery is still this attempt's (not redelivered,
    failed with its endpoint or deleted meanwhile)."""
    now = timezone.now()
    changes: dict[str, Any] = {
        "lease_until": None,
        "response_status": response.status,
        "response_ms": response.duration_ms,
        "last_error": response.error or ("" if response.ok else f"HTTP {response.status}"),
    }
    retry_in: float | None = None
    if response.ok:
        outcome = "succeeded"
        changes.update(
            status=Delivery.Status.SUCCEEDED, completed_at=now, next_attempt_at=None, queued_at=None
        )
    else:
        delay = retry_delay(delivery.attempts - delivery.round_start)
        next_at = now + timedelta(seconds=delay)
        if next_at <= delivery.retry_until:
            outcome = "retrying"
            # Short waits ride a delayed message; longer ones are sent by the sweeper when due.
            retry_in = delay if delay <= settings.WEBHOOKS_RETRY_ENQUEUE_MAX else None
            changes.update(next_attempt_at=next_at, queued_at=next_at if retry_in is not None else None)
        else:
            outcome = "failed"
            changes.update(
                status=Delivery.Status.FAILED, completed_at=now, next_attempt_at=None, queued_at=None
            )
    with transaction.atomic():
        mine = Delivery.objects.filter(
            pk=delivery.pk, attempts=delivery.attempts, status=Delivery.Status.PENDING
        ).update(**changes)
        if not mine:
            return "superseded"
        Attempt.objects.create(
            delivery_id=delivery.pk,
            number=delivery.attempts,
            started_at=started_at,
            duration_ms=response.duration_ms,
            response_status=response.status,
            response_body=response.body[:1000],
            error=response.error,
        )
        endpoint_id, resource_key = delivery.endpoint_id, delivery.resource_key
        if outcome == "succeeded":
            Endpoint.objects.filter(pk=endpoint_id, consecutive_failures__gt=0).update(consecutive_failures=0)
        elif outcome == "failed":
            _endpoint_delivery_failed(endpoint_id)
        if outcome == "retrying":
            if retry_in is not None:
                _enqueue(delivery.pk, countdown=retry_in)
        else:
            transaction.on_commit(lambda: _start_next(endpoint_id, resource_key))
    return outcome


def _endpoint_delivery_failed(endpoint_id: str) -> None:
    """Counts a delivery failed for good; the ``WEBHOOKS_DISABLE_AFTER``-th in a row disables the
    endpoint (its pending deliveries fail with it) and tells the owner."""
    Endpoint.objects.filter(pk=endpoint_id).update(consecutive_failures=F("consecutive_failures") + 1)
    limit = settings.WEBHOOKS_DISABLE_AFTER
    reason = f"{limit} deliveries in a row failed after retrying for {_window_text()}."
    disabled = Endpoint.objects.filter(pk=endpoint_id, active=True, consecutive_failures__gte=limit).update(
        active=False, disabled_reason=reason, updated_at=timezone.now()
    )
    if not disabled:
        return
    _fail_pending(endpoint_id, "The endpoint was disabled after repeated failures.")
    endpoint = Endpoint.objects.get(pk=endpoint_id)
    logger.warning("webhook endpoint %s disabled: %s", endpoint_id, reason)
    metrics.endpoint_disabled()
    from accounts import notifications

    notifications.notify_webhook_endpoint_disabled(
        user_id=endpoint.owner_id, endpoint_id=endpoint.pk, url=endpoint.url, reason=reason
    )


def _window_text() -> str:
    seconds = int(settings.WEBHOOKS_RETRY_WINDOW)
    if seconds >= 86400:
        return f"{seconds / 86400:g} days"
    if seconds >= 3600:
        return f"{seconds / 3600:g} hours"
    return f"{seconds} seconds"


@use_primary
def delivery_redeliver(*, delivery: Delivery) -> Delivery:
    """Sends a delivery again now, with a new round of retries (receivers dedupe by event id).

    Raises EndpointDisabled, DeliveryInProgress.
    """
    now = timezone.now()
    with transaction.atomic():
        locked = (
            Delivery.objects.select_for_update(of=("self",))
            .select_related("endpoint", "event")
            .get(pk=delivery.pk)
        )
        if not locked.endpoint.active:
            raise EndpointDisabled()
        if locked.lease_until is not None and locked.lease_until > now:
            raise DeliveryInProgress()
        locked.status = Delivery.Status.PENDING
        locked.next_attempt_at = now
        locked.retry_until = now + timedelta(seconds=settings.WEBHOOKS_RETRY_WINDOW)
        locked.round_start = locked.attempts
        locked.completed_at = None
        locked.queued_at = now
        fields = ["status", "next_attempt_at", "retry_until", "round_start", "completed_at", "queued_at"]
        locked.save(update_fields=fields)
        _enqueue(locked.pk)
    return locked


@use_primary
def deliveries_requeue_due(*, limit: int = 1000) -> int:
    """Beat: sends a message for each due delivery that has none (its wait was long, or its message
    was lost) and is first in line for its endpoint and resource. Returns how many."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.WEBHOOKS_REQUEUE_AFTER)
    due = list(
        Delivery.objects.filter(status=Delivery.Status.PENDING, next_attempt_at__lte=now)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .filter(Q(queued_at__isnull=True) | Q(queued_at__lt=stale))
        .filter(~_earlier_pending_q())
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    if not due:
        return 0
    with transaction.atomic():
        Delivery.objects.filter(pk__in=due).update(queued_at=now)
        for delivery_id in due:
            _enqueue(delivery_id)
    return len(due)


@use_primary
def deliveries_prune(*, now: datetime | None = None) -> int:
    """Beat, daily: forgets events (with their deliveries) older than ``WEBHOOKS_KEEP_DAYS`` whose
    deliveries are all complete. Returns how many events."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.WEBHOOKS_KEEP_DAYS)
    pending = Delivery.objects.filter(event_id=OuterRef("pk"), status=Delivery.Status.PENDING)
    old = Event.objects.filter(occurred_at__lt=cutoff).filter(~Exists(pending))
    deleted = 0
    while True:
        ids = list(old.values_list("pk", flat=True)[:1000])
        if not ids:
            return deleted
        Event.objects.filter(pk__in=ids).delete()
        deleted += len(ids)
