"""Reads: plans, a user's current subscription, and what a viewer may watch.

The cache tiers sit here, in front of the ORM (plans: 86400 s, subscriptions: 3600 s), so
views and other apps read plans and subscriptions through these functions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from django.utils import timezone

from videoplatform import cache

from .models import FREE_PLAN_CODE, Plan, Subscription

Viewer = AbstractBaseUser | AnonymousUser | None

# The free limits when no "free" plan row exists.
FREE_MAX_RESOLUTION = 480
FREE_CONCURRENT_STREAMS = 1


def plan_list_active() -> list[Plan]:
    """Plans on offer, in display order. One query, none once cached."""
    if cache.active():
        return [cache.restore(Plan, row) for row in cache.fetch(cache.PLAN, "active", _active_plan_rows)]
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
    if now is None and cache.active():
        user_id = str(user.pk)
        rows = cache.fetch(cache.SUBSCRIPTION, user_id, lambda: _current_rows([user_id]).get(user_id))
        if rows is None:
            return None
        subscription = cache.restore(Subscription, rows[0])
        subscription.plan = cache.restore(Plan, rows[1])
        # Cached while current; a period that ended since is over without any write.
        return subscription if subscription.current_period_end > timezone.now() else None
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
    limits = cache.fetch(cache.PLAN, "free", _free_limits) if cache.active() else _free_limits()
    return Entitlement(
        max_resolution=limits[0] if limits else FREE_MAX_RESOLUTION,
        has_active_subscription=False,
        plan_code=FREE_PLAN_CODE,
        concurrent_streams=limits[1] if limits else FREE_CONCURRENT_STREAMS,
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


# --- Cache tiers: what the cached paths above load, and what writes call ----------------------
# Cache fills read where ``cache.fill_alias()`` says: a replica that has replayed the scope's last
# invalidation, else the primary (a lagging replica's rows must not be cached).


def _active_plan_rows() -> list[cache.Snapshot]:
    plans = Plan.objects.using(cache.fill_alias()).filter(is_active=True)
    plans = plans.order_by("sort_order", "price", "code")
    return [cache.snapshot(plan) for plan in plans]


def _free_limits() -> tuple[int, int] | None:
    plan = (
        Plan.objects.using(cache.fill_alias())
        .filter(code=FREE_PLAN_CODE)
        .only("max_resolution", "concurrent_streams")
        .first()
    )
    return (plan.max_resolution, plan.concurrent_streams) if plan else None


def _current_rows(user_ids: list[str]) -> dict[str, Any]:
    """user id -> (subscription, plan) snapshots of the current subscription; one query."""
    current = (
        Subscription.objects.using(cache.fill_alias())
        .select_related("plan")
        .filter(
            user_id__in=user_ids,
            status__in=Subscription.CURRENT_STATUSES,
            current_period_end__gt=timezone.now(),
        )
    )
    return {str(s.user_id): (cache.snapshot(s), cache.snapshot(s.plan)) for s in current}


def subscription_cache_refresh(*, user_ids: Iterable[str]) -> None:
    """Every change to users' subscriptions calls this: once the transaction commits, their
    current subscription is written through to L2 and dropped from every process's L1."""
    cache.refresh_on_commit(cache.SUBSCRIPTION, [str(user_id) for user_id in user_ids], _current_rows)


def plan_cache_invalidate() -> None:
    """After plans change (the admin): once the transaction commits, every process reads the
    plans again, and the cached subscriptions too (each carries its plan)."""

    def invalidate() -> None:
        cache.tiers().invalidate_kind(cache.PLAN)
        cache.tiers().invalidate_kind(cache.SUBSCRIPTION)

    transaction.on_commit(invalidate, robust=True)
