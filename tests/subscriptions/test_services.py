"""Services: periods, replacing, expiry, and the payment gateway setting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from subscriptions import services
from subscriptions.billing import NoPaymentGateway, get_payment_gateway
from subscriptions.exceptions import AlreadyCanceled, NoCurrentSubscription, PlanNotSubscribable
from subscriptions.models import Plan, Subscription
from tests.factories import PlanFactory, SubscriptionFactory, UserFactory


@pytest.mark.parametrize(
    ("start", "interval", "end"),
    [
        (datetime(2027, 1, 15, 9, 30, tzinfo=UTC), "month", datetime(2027, 2, 15, 9, 30, tzinfo=UTC)),
        (datetime(2028, 1, 31, tzinfo=UTC), "month", datetime(2028, 2, 29, tzinfo=UTC)),
        (datetime(2027, 1, 31, tzinfo=UTC), "month", datetime(2027, 2, 28, tzinfo=UTC)),
        (datetime(2027, 12, 31, tzinfo=UTC), "month", datetime(2028, 1, 31, tzinfo=UTC)),
        (datetime(2028, 2, 29, tzinfo=UTC), "year", datetime(2029, 2, 28, tzinfo=UTC)),
        (datetime(2027, 6, 1, tzinfo=UTC), "year", datetime(2028, 6, 1, tzinfo=UTC)),
    ],
)
def test_period_end_uses_calendar_months(start: datetime, interval: str, end: datetime) -> None:
    assert services.period_end(start=start, interval=interval) == end


@pytest.mark.django_db
def test_create_refuses_the_free_and_inactive_plans(user: Any) -> None:
    with pytest.raises(PlanNotSubscribable):
        services.subscription_create(user=user, plan=Plan.objects.get(code="free"))
    with pytest.raises(PlanNotSubscribable):
        services.subscription_create(user=user, plan=PlanFactory(is_active=False))
    assert not Subscription.objects.filter(user=user).exists()


@pytest.mark.django_db
def test_create_uses_the_given_time(user: Any) -> None:
    now = datetime(2027, 3, 31, 12, tzinfo=UTC)
    plan = PlanFactory(interval=Plan.Interval.MONTH)

    subscription = services.subscription_create(user=user, plan=plan, now=now)

    assert subscription.current_period_start == now
    assert subscription.current_period_end == datetime(2027, 4, 30, 12, tzinfo=UTC)


@pytest.mark.django_db
def test_cancel_and_expire_refuse_a_subscription_that_is_not_current(user: Any) -> None:
    expired = SubscriptionFactory(user=user, status=Subscription.Status.EXPIRED)
    lapsed = SubscriptionFactory(user=user, current_period_end=timezone.now() - timedelta(minutes=1))

    with pytest.raises(NoCurrentSubscription):
        services.subscription_cancel(subscription=expired)
    with pytest.raises(NoCurrentSubscription):
        services.subscription_cancel(subscription=lapsed)
    with pytest.raises(NoCurrentSubscription):
        services.subscription_expire(subscription=expired)


@pytest.mark.django_db
def test_cancel_rechecks_under_the_lock() -> None:
    subscription = SubscriptionFactory()
    stale_copy = Subscription.objects.get(pk=subscription.pk)
    services.subscription_cancel(subscription=subscription)

    with pytest.raises(AlreadyCanceled):
        services.subscription_cancel(subscription=stale_copy)


@pytest.mark.django_db
def test_expire_ends_a_subscription_now() -> None:
    subscription = SubscriptionFactory()
    now = timezone.now()

    services.subscription_expire(subscription=subscription, now=now)

    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.EXPIRED
    assert subscription.ended_at == now


@pytest.mark.django_db
def test_expire_lapsed_marks_only_subscriptions_whose_period_ended() -> None:
    now = timezone.now()
    ago = now - timedelta(days=1)
    lapsed_active = SubscriptionFactory(current_period_end=ago)
    lapsed_canceled = SubscriptionFactory(current_period_end=ago, cancel_at_period_end=True, canceled_at=ago)
    lapsed_past_due = SubscriptionFactory(current_period_end=ago, status=Subscription.Status.PAST_DUE)
    ends_exactly_now = SubscriptionFactory(current_period_end=now)
    in_period = SubscriptionFactory(current_period_end=now + timedelta(days=3))
    already_expired = SubscriptionFactory(current_period_end=ago, status=Subscription.Status.EXPIRED)
    replaced = SubscriptionFactory(current_period_end=ago, status=Subscription.Status.CANCELED)

    assert services.subscription_expire_lapsed(now=now, batch_size=2) == 4

    expired_ids = {lapsed_active.pk, lapsed_canceled.pk, lapsed_past_due.pk, ends_exactly_now.pk}
    for subscription in Subscription.objects.filter(pk__in=expired_ids):
        assert subscription.status == Subscription.Status.EXPIRED
        assert subscription.ended_at == subscription.current_period_end
    in_period.refresh_from_db()
    replaced.refresh_from_db()
    already_expired.refresh_from_db()
    assert in_period.status == Subscription.Status.ACTIVE
    assert replaced.status == Subscription.Status.CANCELED
    assert already_expired.ended_at is None  # untouched
    assert services.subscription_expire_lapsed(now=now) == 0


@pytest.mark.django_db
def test_expire_lapsed_renews_nothing() -> None:
    subscription = SubscriptionFactory(current_period_end=timezone.now() - timedelta(seconds=1))

    services.subscription_expire_lapsed()

    assert not Subscription.objects.filter(
        user=subscription.user, status__in=Subscription.CURRENT_STATUSES
    ).exists()


@pytest.mark.django_db
def test_expire_lapsed_lets_the_user_subscribe_again() -> None:
    user = UserFactory()
    plan = PlanFactory()
    SubscriptionFactory(user=user, plan=plan, current_period_end=timezone.now() - timedelta(seconds=1))
    services.subscription_expire_lapsed()

    renewed = services.subscription_create(user=user, plan=plan)

    assert renewed.status == Subscription.Status.ACTIVE


@pytest.mark.django_db
def test_the_expire_task_calls_the_service() -> None:
    from subscriptions.tasks import expire_lapsed_subscriptions

    SubscriptionFactory(current_period_end=timezone.now() - timedelta(seconds=1))

    assert expire_lapsed_subscriptions.apply().get() == 1


def test_the_default_gateway_approves_without_charging(settings: Any) -> None:
    del settings.SUBSCRIPTIONS_PAYMENT_GATEWAY

    gateway = get_payment_gateway()

    assert isinstance(gateway, NoPaymentGateway)
    assert gateway.charge_subscription(Subscription()).approved is True


def test_a_gateway_setting_naming_something_else_is_refused(settings: Any) -> None:
    settings.SUBSCRIPTIONS_PAYMENT_GATEWAY = "tests.subscriptions.gateways.NotAGateway"

    with pytest.raises(ImproperlyConfigured):
        get_payment_gateway()
