"""Writes: subscribe or change plan, cancel at period end, expire.

Every change to a user's subscription locks that user's row first, so two requests for the same
user run one after the other; the partial unique constraint (one current subscription per user)
is the last line behind that. Calls to the payment gateway that tell the processor to stop
billing run after commit.
"""

from __future__ import annotations

import calendar
import logging
from datetime import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from accounts import notifications
from videoplatform import events

from . import selectors
from .billing import get_payment_gateway
from .exceptions import (
    AlreadyCanceled,
    AlreadySubscribed,
    NoCurrentSubscription,
    PaymentDeclined,
    PlanNotSubscribable,
    SubscriptionConflict,
)
from .models import FREE_PLAN_CODE, Plan, Subscription

logger = logging.getLogger(__name__)

ONE_CURRENT_CONSTRAINT = "subscriptions_one_current_per_user"


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` plus whole calendar months; the day is clamped (31 Jan + 1 month = 28/29 Feb)."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def period_end(*, start: datetime, interval: str) -> datetime:
    """The end of a billing period of ``interval`` starting at ``start``."""
    if interval == Plan.Interval.YEAR:
        return add_months(start, 12)
    if interval == Plan.Interval.MONTH:
        return add_months(start, 1)
    raise ValueError(f"Unknown plan interval: {interval!r}")


def _violates_one_current(exc: IntegrityError) -> bool:
    diag = getattr(exc.__cause__, "diag", None)
    constraint = getattr(diag, "constraint_name", None)
    # Other backends do not name the constraint; the message does.
    return constraint == ONE_CURRENT_CONSTRAINT or ONE_CURRENT_CONSTRAINT in str(exc)


def _cancel_with_gateway_on_commit(subscription: Subscription) -> None:
    gateway = get_payment_gateway()
    transaction.on_commit(lambda: gateway.cancel(subscription), robust=True)


def subscription_create(*, user: AbstractBaseUser, plan: Plan, now: datetime | None = None) -> Subscription:
    """Subscribe ``user`` to ``plan``, replacing their current subscription if they have one.

    The replaced subscription ends now (status ``canceled``); one whose period had already ended
    becomes ``expired``. The new one starts now and is charged through the payment gateway; a
    declined charge changes nothing. No proration: a plan change starts a fresh period.

    Raises PlanNotSubscribable, AlreadySubscribed, PaymentDeclined, SubscriptionConflict, and
    billing.PaymentGatewayUnavailable.
    """
    now = now or timezone.now()
    if plan.code == FREE_PLAN_CODE:
        raise PlanNotSubscribable(
            "The free plan needs no subscription; cancel your current subscription to return to it."
        )
    if not plan.is_active:
        raise PlanNotSubscribable("This plan is no longer offered.")
    gateway = get_payment_gateway()
    try:
        with transaction.atomic():
            # Serialises changes for this user, including their first subscription (when there is
            # no subscription row to lock). NO KEY UPDATE does not block inserts that reference
            # the user (their tokens, videos).
            list(
                get_user_model()
                .objects.select_for_update(no_key=True)
                .filter(pk=user.pk)
                .values_list("pk", flat=True)
            )
            current = (
                Subscription.objects.select_for_update()
                .filter(user_id=user.pk, status__in=Subscription.CURRENT_STATUSES)
                .first()
            )
            replaced: Subscription | None = None
            if current is not None:
                if current.current_period_end <= now:
                    current.status = Subscription.Status.EXPIRED
                    current.ended_at = current.current_period_end
                elif current.plan_id == plan.pk:
                    raise AlreadySubscribed()
                else:
                    current.status = Subscription.Status.CANCELED
                    current.canceled_at = current.canceled_at or now
                    current.ended_at = now
                    replaced = current
                current.save(update_fields=["status", "canceled_at", "ended_at", "updated_at"])

            subscription = Subscription.objects.create(
                user_id=user.pk,
                plan=plan,
                status=Subscription.Status.ACTIVE,
                current_period_start=now,
                current_period_end=period_end(start=now, interval=plan.interval),
                created_at=now,
            )
            charge = gateway.charge_subscription(subscription)
            if not charge.approved:
                raise PaymentDeclined(charge.message or None)
            logger.info(
                "subscription %s created for user %s on plan %s (charge %r)",
                subscription.pk,
                user.pk,
                plan.code,
                charge.reference,
            )
            if replaced is not None:
                transaction.on_commit(lambda: gateway.cancel(replaced), robust=True)
                events.publish_on_commit("subscription.canceled", replaced)
            notifications.notify_subscription_started(subscription=subscription)  # after the commit
            events.publish_on_commit("subscription.created", subscription)
            selectors.subscription_cache_refresh(user_ids=[user.pk])
    except IntegrityError as exc:
        if _violates_one_current(exc):
            raise SubscriptionConflict() from exc
        raise
    return subscription


def _lock_current(subscription: Subscription) -> Subscription:
    """``subscription`` re-read under a row lock; NoCurrentSubscription if it is no longer current."""
    locked = (
        Subscription.objects.select_related("plan")
        .select_for_update(of=("self",))
        .filter(pk=subscription.pk, status__in=Subscription.CURRENT_STATUSES)
        .first()
    )
    if locked is None:
        raise NoCurrentSubscription()
    return locked


def subscription_cancel(*, subscription: Subscription, now: datetime | None = None) -> Subscription:
    """Cancel at period end: it stays active (and watchable) until ``current_period_end``.

    Raises NoCurrentSubscription if it is no longer current, AlreadyCanceled if already canceled.
    """
    now = now or timezone.now()
    with transaction.atomic():
        locked = _lock_current(subscription)
        if locked.current_period_end <= now:
            raise NoCurrentSubscription()  # its period is over; expire_lapsed will mark it
        if locked.cancel_at_period_end:
            raise AlreadyCanceled()
        locked.cancel_at_period_end = True
        locked.canceled_at = now
        locked.save(update_fields=["cancel_at_period_end", "canceled_at", "updated_at"])
        _cancel_with_gateway_on_commit(locked)
        notifications.notify_subscription_canceled(subscription=locked)  # after the commit
        events.publish_on_commit("subscription.canceled", locked)
        selectors.subscription_cache_refresh(user_ids=[locked.user_id])
    return locked


def subscription_expire(*, subscription: Subscription, now: datetime | None = None) -> Subscription:
    """End a current subscription now (staff action). Raises NoCurrentSubscription."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = _lock_current(subscription)
        locked.status = Subscription.Status.EXPIRED
        locked.ended_at = min(now, locked.current_period_end)
        locked.canceled_at = locked.canceled_at or now
        locked.save(update_fields=["status", "ended_at", "canceled_at", "updated_at"])
        _cancel_with_gateway_on_commit(locked)
        selectors.subscription_cache_refresh(user_ids=[locked.user_id])
    return locked


def subscription_expire_lapsed(*, now: datetime | None = None, batch_size: int = 1000) -> int:
    """Mark every current subscription whose period has ended as expired; returns how many.

    Renews none: there is no payment processor to charge a renewal (docs/subscriptions.md).
    Works in batches so no transaction holds many row locks for long. A cached subscription
    whose period has ended is not current when read; the cache is refreshed all the same, as
    after every bulk write (``now`` may be later than the clock the readers see).
    """
    now = now or timezone.now()
    lapsed = Subscription.objects.filter(
        status__in=Subscription.CURRENT_STATUSES, current_period_end__lte=now
    ).order_by("current_period_end")
    expired = 0
    while True:
        with transaction.atomic():
            rows = list(lapsed.select_for_update(skip_locked=True).values_list("pk", "user_id")[:batch_size])
            if not rows:
                return expired
            ids = [pk for pk, _ in rows]
            selectors.subscription_cache_refresh(user_ids=[user_id for _, user_id in rows])
            # ended_at is when the period ended, not when this job noticed.
            expired += Subscription.objects.filter(pk__in=ids).update(
                status=Subscription.Status.EXPIRED, ended_at=F("current_period_end"), updated_at=now
            )
