"""Transactional email: welcome, video ready, transcoding failed, subscription started and canceled.

An email is recorded (``EmailDelivery``, status ``queued``) in the transaction of the write that
causes it and sent after the commit by ``accounts.tasks.send_email`` on the ``email`` queue,
through Django's email backend (SMTP in production). Text and HTML bodies come from
``accounts/templates/accounts/email/<kind>.txt|.html`` and the subject from ``<kind>_subject.txt``.
A failing server is retried 5 times with backoff, then the email is marked ``failed`` with the
error. Delivery is at least once: a worker that dies between the server's acceptance and the
status update sends it again.
"""

from __future__ import annotations

import smtplib
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from videoplatform.jobs.enqueue import enqueue_on_commit, task_named

from .models import EmailDelivery, User

# The job that sends a recorded email (accounts/tasks.py), named: the tasks import this module.
SEND_EMAIL = "accounts.tasks.send_email"

KINDS = (
    "welcome",
    "video_ready",
    "transcoding_failed",
    "subscription_started",
    "subscription_canceled",
    "webhook_disabled",
)
# Worth another attempt: the server is down, slow, or says "try later" (4xx).
TRANSIENT_EMAIL_ERRORS: tuple[type[BaseException], ...] = (smtplib.SMTPException, OSError)


class PermanentEmailError(Exception):
    """The server refused the message for good (5xx for the recipient): retrying cannot help."""


def _display_name(user: User) -> str:
    return user.display_name or user.username


def email_queue(*, user: User, kind: str, context: dict[str, Any]) -> EmailDelivery | None:
    """Records an email to ``user`` and sends it once the current transaction commits.

    A rolled-back transaction leaves neither the record nor a job. Users without an address
    (or deactivated) get none.
    """
    if kind not in KINDS:
        raise ValueError(f"Unknown email kind: {kind}")
    if not user.email or not user.is_active:
        return None
    delivery = EmailDelivery.objects.create(
        user_id=user.pk,
        kind=kind,
        to=user.email,
        context={"name": _display_name(user), "username": user.username, **context},
    )
    enqueue_on_commit(SEND_EMAIL, delivery.pk)
    return delivery


def email_render(*, kind: str, context: dict[str, Any]) -> tuple[str, str, str]:
    """(subject, text body, HTML body) of an email."""
    values = {"site_url": settings.SITE_URL, **context}
    subject = " ".join(render_to_string(f"accounts/email/{kind}_subject.txt", values).split())
    values["subject"] = subject
    text = render_to_string(f"accounts/email/{kind}.txt", values)
    html = render_to_string(f"accounts/email/{kind}.html", values)
    return subject, text, html


def _permanent(exc: BaseException) -> bool:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    return isinstance(exc, (smtplib.SMTPSenderRefused, smtplib.SMTPDataError)) and exc.smtp_code >= 500


def email_delivery_send(*, delivery_id: str) -> str:
    """Sends a queued email; returns its status (``sent``, or why nothing was sent).

    Raises ``PermanentEmailError`` when the server refuses it for good, and the transient
    errors (``TRANSIENT_EMAIL_ERRORS``) for the task to retry; the error is kept on the record.
    """
    with transaction.atomic():
        delivery = EmailDelivery.objects.select_for_update().filter(pk=delivery_id).first()
        if delivery is None:
            return "gone"
        if delivery.status != EmailDelivery.Status.QUEUED:
            return str(delivery.status)  # a redelivered job: sent (or given up) already
        delivery.attempts += 1
        delivery.save(update_fields=["attempts"])
    subject, text, html = email_render(kind=delivery.kind, context=delivery.context)
    message = EmailMultiAlternatives(subject, text, settings.DEFAULT_FROM_EMAIL, [delivery.to])
    message.attach_alternative(html, "text/html")
    try:
        message.send()
    except TRANSIENT_EMAIL_ERRORS as exc:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        EmailDelivery.objects.filter(pk=delivery.pk).update(last_error=error, subject=subject)
        if _permanent(exc):
            raise PermanentEmailError(error) from exc
        raise
    EmailDelivery.objects.filter(pk=delivery.pk).update(
        status=EmailDelivery.Status.SENT, subject=subject, sent_at=timezone.now(), last_error=""
    )
    return "sent"


def email_delivery_mark_failed(*, delivery_id: str, error: str) -> None:
    """Gives up on an email (its retries are used up, or the server refused it for good)."""
    EmailDelivery.objects.filter(pk=delivery_id, status=EmailDelivery.Status.QUEUED).update(
        status=EmailDelivery.Status.FAILED, last_error=error[:2000]
    )


def email_deliveries_requeue_stale(*, older_than: timedelta = timedelta(hours=1), limit: int = 1000) -> int:
    """Enqueues again the emails still queued long after they were recorded (their job was lost:
    the broker refused it, or it was purged). Sending is idempotent, so a slow job is harmless."""
    send_email = task_named(SEND_EMAIL)
    cutoff = timezone.now() - older_than
    ids = list(
        EmailDelivery.objects.filter(status=EmailDelivery.Status.QUEUED, created_at__lt=cutoff)
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    )
    for delivery_id in ids:
        send_email.delay(delivery_id)
    return len(ids)
