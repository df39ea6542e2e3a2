"""Webhook endpoints (a user's URLs), the events recorded for them, and their deliveries."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from videoplatform.ids import PrefixedIdField

URL_MAX_LENGTH = 2048
ALL_EVENTS = "*"


class Endpoint(models.Model):
    """A URL of one user that receives the events of their resources, signed with its secret."""

    id = PrefixedIdField(prefix="whk")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_endpoints", db_index=False
    )
    url = models.CharField(max_length=URL_MAX_LENGTH)
    events = models.JSONField(default=list, help_text='Event types it receives; ["*"] for all.')
    active = models.BooleanField(default=True)
    disabled_reason = models.CharField(
        max_length=300, blank=True, default="", help_text="Why the platform disabled it (empty: it did not)."
    )
    # whsec_<base64>: symmetric, so kept readable (shown to the owner once, at creation or roll).
    secret = models.CharField(max_length=100)
    previous_secret = models.CharField(max_length=100, blank=True, default="")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(
        default=0, help_text="Deliveries failed for good since the last successful attempt."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # A user's endpoints (the API list) and the active ones an event fans out to.
            models.Index(fields=["owner", "-created_at"], name="webhooks_endpoint_owner_idx"),
        ]

    def __str__(self) -> str:
        return self.url

    def wants(self, event_type: str) -> bool:
        return ALL_EVENTS in self.events or event_type in self.events


class Event(models.Model):
    """One event as sent: its public id, type and body. The integer key orders the events."""

    id = models.BigAutoField(primary_key=True)
    public_id = models.CharField(max_length=32, unique=True, help_text="evt_…: the webhook-id header.")
    type = models.CharField(max_length=50)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    resource_type = models.CharField(max_length=40)
    resource_id = models.CharField(max_length=64)
    occurred_at = models.DateTimeField(default=timezone.now)
    body = models.TextField(help_text="The JSON body, byte for byte what every attempt sends.")

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["occurred_at"], name="webhooks_event_time_idx")]

    def __str__(self) -> str:
        return f"{self.type} {self.public_id}"


class Delivery(models.Model):
    """An event on its way to one endpoint: pending (with its next attempt), then succeeded or failed.

    Per endpoint and resource (``resource_key``) deliveries are attempted in event order: one waits
    while an earlier one of the same pair is pending.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    id = PrefixedIdField(prefix="whd")
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    resource_key = models.CharField(max_length=110)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # Attempts made before the current round of retries (a redelivery starts a new round).
    round_start = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    retry_until = models.DateTimeField(help_text="No attempt is made after this; then it has failed.")
    # When a message for the next attempt was last sent (null: none; the sweeper sends one when due).
    queued_at = models.DateTimeField(null=True, blank=True)
    # An attempt in flight holds the delivery until then (a crashed worker's lapses).
    lease_until = models.DateTimeField(null=True, blank=True)
    first_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_ms = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")
    completed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event"], name="webhooks_delivery_once"),
        ]
        indexes = [
            # An endpoint's delivery log, newest first.
            models.Index(fields=["endpoint", "-created_at"], name="webhooks_delivery_log_idx"),
            # Ordering: is an earlier delivery of this endpoint and resource still pending?
            models.Index(
                fields=["endpoint", "resource_key", "event"],
                condition=Q(status="pending"),
                name="webhooks_delivery_order_idx",
            ),
            # The sweeper and the backlog metric: pending deliveries by due time.
            models.Index(
                fields=["next_attempt_at"], condition=Q(status="pending"), name="webhooks_delivery_due_idx"
            ),
        ]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"


class Attempt(models.Model):
    """One HTTP request of a delivery, as the endpoint answered it (or why there was no answer)."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.CharField(
        max_length=1000, blank=True, default="", help_text="Its first 1,000 characters."
    )
    error = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="webhooks_attempt_once"),
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}"

    @property
    def succeeded(self) -> bool:
        return self.response_status is not None and 200 <= self.response_status < 300
