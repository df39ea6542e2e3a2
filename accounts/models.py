"""Users and their API tokens."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from videoplatform.ids import PrefixedIdField


class User(AbstractUser):
    id = PrefixedIdField(prefix="usr")
    email = models.EmailField("email address")
    display_name = models.CharField(max_length=100, blank=True)
    show_adult_content = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), name="accounts_user_email_ci_unique"),
            models.UniqueConstraint(Lower("username"), name="accounts_user_username_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.username


class AuthToken(models.Model):
    """A bearer token. Only its SHA-256 digest is stored; the token is shown once, at login."""

    digest = models.CharField(max_length=64, primary_key=True, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="auth_tokens")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(db_index=True)
    user_agent = models.CharField(max_length=255, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "-created_at"], name="accounts_token_user_idx")]

    def __str__(self) -> str:
        return f"token {self.digest[:8]}… of {self.user_id}"

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()


# --- Notifications and transactional email (accounts/notifications.py, accounts/emails.py) ---


class Notification(models.Model):
    """An entry in a user's inbox, created by an event (a video ready, a subscription change)."""

    class Kind(models.TextChoices):
        VIDEO_READY = "video_ready", "Video ready"
        TRANSCODING_FAILED = "transcoding_failed", "Transcoding failed"
        SUBSCRIPTION_STARTED = "subscription_started", "Subscription started"
        SUBSCRIPTION_CANCELED = "subscription_canceled", "Subscription canceled"
        WEBHOOK_DISABLED = "webhook_disabled", "Webhook endpoint disabled"

    id = PrefixedIdField(prefix="ntf")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=40, choices=Kind.choices)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True, default="")
    data = models.JSONField(default=dict, blank=True, help_text="Ids the client links to (video_id, ...).")
    # The event's key: a task that runs twice (a redelivery) still makes one notification.
    event_key = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["user", "-created_at", "-id"], name="accounts_ntf_user_idx"),
            models.Index(
                fields=["user", "-created_at", "-id"],
                condition=models.Q(read_at__isnull=True),
                name="accounts_ntf_unread_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} for {self.user_id}"


class EmailDelivery(models.Model):
    """One transactional email: queued with the write that caused it, then sent (once) or failed."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    id = PrefixedIdField(prefix="eml")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="email_deliveries")
    kind = models.CharField(max_length=40)
    to = models.EmailField()
    context = models.JSONField(default=dict, blank=True, help_text="What the templates render.")
    subject = models.CharField(max_length=255, blank=True, default="")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "email deliveries"
        indexes = [models.Index(fields=["status", "-created_at"], name="accounts_email_status_idx")]

    def __str__(self) -> str:
        return f"{self.kind} to {self.to} ({self.status})"
