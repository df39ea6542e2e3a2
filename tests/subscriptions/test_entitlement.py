"""viewer_entitlement: what the streaming app will ask."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone

from subscriptions import services
from subscriptions.models import Plan, Subscription
from subscriptions.selectors import Entitlement, viewer_entitlement
from tests.factories import SubscriptionFactory

pytestmark = pytest.mark.django_db

FREE = Entitlement(max_resolution=480, has_active_subscription=False, plan_code="free", concurrent_streams=1)


@pytest.mark.parametrize("viewer", [None, AnonymousUser()])
def test_anonymous_viewers_get_the_free_limits(viewer: Any) -> None:
    assert viewer_entitlement(viewer) == FREE


def test_a_user_without_a_subscription_gets_the_free_limits(user: Any) -> None:
    assert viewer_entitlement(user) == FREE


def test_the_free_limits_come_from_the_free_plan_row(user: Any) -> None:
    Plan.objects.filter(code="free").update(max_resolution=360, concurrent_streams=2)

    entitlement = viewer_entitlement(user)

    assert (entitlement.max_resolution, entitlement.concurrent_streams) == (360, 2)


def test_without_a_free_plan_row_the_defaults_apply(user: Any) -> None:
    Plan.objects.filter(code="free").delete()

    assert viewer_entitlement(user) == FREE
    assert viewer_entitlement(None) == FREE


def test_a_premium_subscriber(user: Any) -> None:
    SubscriptionFactory(user=user, plan=Plan.objects.get(code="premium"))

    assert viewer_entitlement(user) == Entitlement(
        max_resolution=1080, has_active_subscription=True, plan_code="premium", concurrent_streams=4
    )


def test_a_standard_subscriber(user: Any) -> None:
    SubscriptionFactory(user=user, plan=Plan.objects.get(code="standard"))

    entitlement = viewer_entitlement(user)

    assert (entitlement.max_resolution, entitlement.plan_code, entitlement.has_active_subscription) == (
        720,
        "standard",
        True,
    )


def test_canceled_at_period_end_keeps_the_plan_until_the_period_ends(user: Any) -> None:
    subscription = SubscriptionFactory(user=user, plan=Plan.objects.get(code="premium"))
    services.subscription_cancel(subscription=subscription)

    assert viewer_entitlement(user).max_resolution == 1080
    assert viewer_entitlement(user, now=subscription.current_period_end) == FREE


def test_a_lapsed_or_ended_subscription_gives_the_free_limits(user: Any, other_user: Any) -> None:
    premium = Plan.objects.get(code="premium")
    SubscriptionFactory(user=user, plan=premium, current_period_end=timezone.now() - timedelta(seconds=1))
    SubscriptionFactory(user=other_user, plan=premium, status=Subscription.Status.EXPIRED)

    assert viewer_entitlement(user) == FREE
    assert viewer_entitlement(other_user) == FREE


def test_entitlement_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        FREE.max_resolution = 1080  # type: ignore[misc]


def test_one_query_per_viewer(user: Any, django_assert_num_queries: Any) -> None:
    SubscriptionFactory(user=user, plan=Plan.objects.get(code="premium"))

    with django_assert_num_queries(1):
        viewer_entitlement(user)
    with django_assert_num_queries(1):
        viewer_entitlement(AnonymousUser())
