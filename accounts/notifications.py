"""A user's inbox (``Notification``) and the events that fill it, with their emails.

Events (``notify_*``) are called by the writes that cause them, inside their transaction or
from their ``on_commit``: each enqueues, after the commit, the inbox entry on the
``notification`` queue and records the email for the ``email`` queue. A rolled-back write
notifies no one. The inbox reads and writes (list, mark read) are here too.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from videoplatform.api.pagination import PageParams, paginate_queryset
from videoplatform.jobs.enqueue import enqueue_on_commit

from . import emails
from .models import Notification, User

# The job that adds an inbox entry (accounts/tasks.py), named: the tasks import this module.
NOTIFY_USER = "accounts.tasks.notify_user"

Kind = Notification.Kind


# --- Events ------------------------------------------------------------------------------------


def _recipient(user_id: str) -> User | None:
    return (
        User.objects.filter(pk=user_id, is_active=True)
        .only("id", "email", "username", "display_name", "is_active")
        .first()
    )


def _notify(
    *,
    user_id: str,
    kind: str,
    title: str,
    body: str,
    data: dict[str, Any],
    email_context: dict[str, Any] | None,
) -> None:
    user = _recipient(user_id)
    if user is None:
        return
    enqueue_on_commit(NOTIFY_USER, user_id=user.pk, kind=kind, title=title, body=body, data=data)
    if email_context is not None:
        emails.email_queue(user=user, kind=kind, context=email_context)


def _watch_url(video_id: str) -> str:
    return f"{settings.SITE_URL}/watch/{video_id}"


def email_welcome(*, user: User) -> None:
    """The welcome email of a new account (call it inside the registration's transaction)."""
    emails.email_queue(user=user, kind="welcome", context={})


def notify_video_ready(*, video: Any) -> None:
    """Tells a video's owner it can be watched: an inbox entry and an email."""
    _notify(
        user_id=video.owner_id,
        kind=Kind.VIDEO_READY,
        title=f'"{video.title}" is ready',
        body="Your video has been processed and can be watched now.",
        data={"video_id": video.pk},
        email_context={"video_title": video.title, "video_id": video.pk, "watch_url": _watch_url(video.pk)},
    )


def notify_transcoding_failed(*, video: Any, error: str) -> None:
    """Tells a video's owner that processing their upload failed, and why."""
    _notify(
        user_id=video.owner_id,
        kind=Kind.TRANSCODING_FAILED,
        title=f'"{video.title}" could not be processed',
        body=error[:1000],
        data={"video_id": video.pk},
        email_context={"video_title": video.title, "video_id": video.pk, "error": error[:1000]},
    )


def _period_end(subscription: Any) -> str:
    return f"{subscription.current_period_end:%Y-%m-%d}"


def notify_subscription_started(*, subscription: Any) -> None:
    plan = subscription.plan
    _notify(
        user_id=subscription.user_id,
        kind=Kind.SUBSCRIPTION_STARTED,
        title=f"Your {plan.name} subscription has started",
        body=f"It renews or ends on {_period_end(subscription)}.",
        data={"subscription_id": subscription.pk, "plan": plan.code},
        email_context={"plan_name": plan.name, "period_end": _period_end(subscription)},
    )


def notify_subscription_canceled(*, subscription: Any) -> None:
    plan = subscription.plan
    _notify(
        user_id=subscription.user_id,
        kind=Kind.SUBSCRIPTION_CANCELED,
        title=f"Your {plan.name} subscription has been canceled",
        body=f"You keep it until {_period_end(subscription)}.",
        data={"subscription_id": subscription.pk, "plan": plan.code},
        email_context={"plan_name": plan.name, "period_end": _period_end(subscription)},
    )


def notify_webhook_endpoint_disabled(*, user_id: str, endpoint_id: str, url: str, reason: str) -> None:
    """Tells a user the platform stopped sending events to one of their webhook endpoints."""
    _notify(
        user_id=user_id,
        kind=Kind.WEBHOOK_DISABLED,
        title="A webhook endpoint was disabled",
        body=f"{url}: {reason}"[:1000],
        data={"endpoint_id": endpoint_id},
        email_context={"url": url, "reason": reason, "endpoint_id": endpoint_id},
    )


# --- The inbox ------------------------------------------------------------------------------------


def notification_create(
    *, user_id: str, kind: str, title: str, body: str = "", data: dict[str, Any] | None = None, event_key: str
) -> Notification | None:
    """Adds an entry to a user's inbox, once per ``event_key`` (a re-run job adds nothing).

    None when the user is gone.
    """
    if not User.objects.filter(pk=user_id).exists():
        return None
    try:
        with transaction.atomic():
            notification, _ = Notification.objects.get_or_create(
                event_key=event_key,
                defaults={
                    "user_id": user_id,
                    "kind": kind,
                    "title": title[:200],
                    "body": body,
                    "data": data or {},
                },
            )
    except IntegrityError:  # the same event, created concurrently
        return Notification.objects.filter(event_key=event_key).first()
    return notification


def _inbox(user: Any) -> QuerySet[Notification]:
    return Notification.objects.filter(user_id=user.pk)


def notification_list(
    *, user: Any, params: PageParams, unread: bool | None = None
) -> tuple[list[Notification], int]:
    """A user's notifications, newest first; ``unread`` True only unread, False only read ones."""
    queryset = _inbox(user)
    if unread is True:
        queryset = queryset.filter(read_at__isnull=True)
    elif unread is False:
        queryset = queryset.filter(read_at__isnull=False)
    return paginate_queryset(queryset.order_by("-created_at", "-id"), params)


def notification_mark_read(*, user: Any, notification_id: str) -> Notification:
    """Marks one of the user's notifications read (again: no change); another user's is a 404."""
    with transaction.atomic():
        notification = _inbox(user).select_for_update().filter(pk=notification_id).first()
        if notification is None:
            raise Http404("No such notification.")
        if notification.read_at is None:
            notification.read_at = timezone.now()
            notification.save(update_fields=["read_at"])
    return notification


def notifications_mark_all_read(*, user: Any) -> int:
    """Marks every unread notification of the user read; how many there were."""
    return _inbox(user).filter(read_at__isnull=True).update(read_at=timezone.now())
