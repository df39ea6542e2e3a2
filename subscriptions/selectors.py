"""Reads: plans, a user's current subscription, and what a viewer may watch.

A cache tier will sit here, in front of the ORM (plans: 86400 s, subscriptions: 3600 s), so
views and other apps read plans and subscriptions through these functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone

from .models import FREE_PLAN_CODE, Plan, Subscription

Viewer = AbstractBaseUser | AnonymousUser | None

# The free limits when no "free" plan row exists.
FREE_MAX_RESOLUTION = 480
FREE_CONCURRENT_STREAMS = 1


def plan_list_active() -> list[Plan]:
    """Plans on offer, in display order. One query."""
    return list(Plan.objects.filter(is_active=True).order_by("sort_order", "price", "code"))


def plan_get_active(*, plan_id: str | None = None, code: str | None = None) -> Plan | None:
    """An active plan by id or by code, or None."""
    if (plan_id is None) == (code is None):
        raise ValueError("Give exactly one of plan_id and code.")
    lookup = {"pk": plan_id} if plan_id is not None else {"code": code}
    return Plan.objects.filter(is_active=True, **lookup).first()


def subscription_get_current(*, user: Viewer, now: datetime | None = None) -> Subscription | None:
    """The user's current subscription with its plan, or None. One query.

    Current means active or past due, and its period has not ended: a subscription whose period
    ended is over even before ``subscription_expire_lapsed`` marks it expired.
    Reads the primary (a user reads their own subscription right after changing it).
    """
    if user is None or not user.is_authenticated:
        return None
    return (
        Subscription.objects.select_related("plan")
        .filter(
            user_id=user.pk,
            status__in=Subscription.CURRENT_STATUSES,
            current_period_end__gt=now or timezone.now(),
        )
        .first()
    )


@dataclass(frozen=True)
class Entitlement:
    """What a viewer may watch. Anonymous viewers and non-subscribers get the free plan's limits."""

    max_resolution: int
    has_active_subscription: bool
    plan_code: str
    concurrent_streams: int


def free_entitlement() -> Entitlement:
    """The free plan's limits, from its row when it exists."""
    plan = Plan.objects.filter(code=FREE_PLAN_CODE).only("max_resolution", "concurrent_streams").first()
    return Entitlement(
        max_resolution=plan.max_resolution if plan else FREE_MAX_RESOLUTION,
        has_active_subscription=False,
        plan_code=FREE_PLAN_CODE,
        concurrent_streams=plan.concurrent_streams if plan else FREE_CONCURRENT_STREAMS,
    )


def viewer_entitlement(user: Viewer, *, now: datetime | None = None) -> Entitlement:
    """What ``user`` (a user, AnonymousUser or None) may watch: the streaming app asks this."""
    subscription = subscription_get_current(user=user, now=now)
    if subscription is None or subscription.plan.code == FREE_PLAN_CODE:
        return free_entitlement()
    plan = subscription.plan
    return Entitlement(
        max_resolution=plan.max_resolution,
        has_active_subscription=True,
        plan_code=plan.code,
        concurrent_streams=plan.concurrent_streams,
    )
