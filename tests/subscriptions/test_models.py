"""The database's own guarantees: one current subscription per user, and the indexes used."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from subscriptions.models import Subscription
from tests.factories import SubscriptionFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("second_status", [Subscription.Status.ACTIVE, Subscription.Status.PAST_DUE])
def test_the_database_refuses_a_second_current_subscription(user: Any, second_status: str) -> None:
    SubscriptionFactory(user=user)

    with pytest.raises(IntegrityError, match="subscriptions_one_current_per_user"), transaction.atomic():
        SubscriptionFactory(user=user, status=second_status)

    assert Subscription.objects.filter(user=user).count() == 1


def test_ended_subscriptions_do_not_count(user: Any, other_user: Any) -> None:
    SubscriptionFactory(user=user, status=Subscription.Status.EXPIRED)
    SubscriptionFactory(user=user, status=Subscription.Status.CANCELED)
    SubscriptionFactory(user=user)
    SubscriptionFactory(user=other_user)

    assert Subscription.objects.filter(status=Subscription.Status.ACTIVE).count() == 2


def explain(sql: str, params: list[Any]) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_current_subscription_lookup_uses_the_partial_unique_index(user: Any) -> None:
    SubscriptionFactory.create_batch(3)
    queryset = Subscription.objects.filter(user_id=user.pk, status__in=Subscription.CURRENT_STATUSES)

    plan = explain(*queryset.query.sql_with_params())

    assert "subscriptions_one_current_per_user" in plan


def test_expiry_scan_uses_the_expiry_index() -> None:
    SubscriptionFactory.create_batch(3)
    # The shape of subscription_expire_lapsed's batch query.
    queryset = (
        Subscription.objects.filter(
            status__in=Subscription.CURRENT_STATUSES, current_period_end__lte=timezone.now()
        )
        .order_by("current_period_end")
        .values_list("pk", flat=True)[:1000]
    )

    plan = explain(*queryset.query.sql_with_params())

    assert "subscriptions_expiry_idx" in plan
