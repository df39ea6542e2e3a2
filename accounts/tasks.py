"""Celery wrappers for accounts: maintenance, transactional email, the inbox."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.db import DatabaseError

from videoplatform.jobs.base import JobTask
from videoplatform.jobs.queues import max_retries

from . import emails, notifications
from .services import token_purge_expired


@shared_task(name="accounts.tasks.purge_expired_tokens", ignore_result=True)
def purge_expired_tokens() -> int:
    """Meant for a daily beat entry: expired token rows are dead weight."""
    return token_purge_expired()


# --- Notifications and transactional email (accounts/notifications.py, accounts/emails.py) ---


@shared_task(
    bind=True,
    base=JobTask,
    name="accounts.tasks.send_email",
    max_retries=max_retries("email"),
    ignore_result=True,
)
def send_email(self: JobTask, delivery_id: str) -> str:
    """Sends one recorded email (queue ``email``); 5 retries with backoff, then recorded failed."""
    try:
        return emails.email_delivery_send(delivery_id=delivery_id)
    except emails.PermanentEmailError as exc:
        emails.email_delivery_mark_failed(delivery_id=delivery_id, error=str(exc))
        raise
    except emails.TRANSIENT_EMAIL_ERRORS as exc:
        if self.out_of_retries:
            emails.email_delivery_mark_failed(
                delivery_id=delivery_id, error=f"Gave up after {self.request.retries + 1} attempts: {exc}"
            )
        self.retry_later(exc)


@shared_task(name="accounts.tasks.send_stale_emails", ignore_result=True)
def send_stale_emails() -> int:
    """Beat: enqueues again the emails whose job was lost (still queued an hour later)."""
    return emails.email_deliveries_requeue_stale()


@shared_task(
    bind=True,
    base=JobTask,
    name="accounts.tasks.notify_user",
    max_retries=max_retries("notification"),
    ignore_result=True,
)
def notify_user(
    self: JobTask, *, user_id: str, kind: str, title: str, body: str = "", data: dict[str, Any] | None = None
) -> str | None:
    """Adds an entry to a user's inbox (queue ``notification``), once per job whatever its re-runs."""
    try:
        created = notifications.notification_create(
            user_id=user_id, kind=kind, title=title, body=body, data=data, event_key=f"task:{self.request.id}"
        )
    except DatabaseError as exc:
        self.retry_later(exc)
    return created.pk if created is not None else None
