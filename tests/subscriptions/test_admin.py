"""Staff pages for plans and subscriptions."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.test import Client

from subscriptions.models import Plan, Subscription
from tests.factories import SubscriptionFactory, UserFactory

pytestmark = pytest.mark.django_db

PLANS = "/admin/subscriptions/plan/"
SUBSCRIPTIONS = "/admin/subscriptions/subscription/"


@pytest.fixture
def staff(client: Client, staff_user: Any) -> Client:
    client.force_login(staff_user)
    return client


def test_plan_pages_load(staff: Client) -> None:
    plan = Plan.objects.get(code="premium")

    changelist = staff.get(PLANS, {"q": "prem", "is_active__exact": "1"})
    assert changelist.status_code == 200
    assert b"Premium" in changelist.content
    assert b"Standard" not in changelist.content
    assert staff.get(f"{PLANS}{plan.pk}/change/").status_code == 200
    assert staff.get(f"{PLANS}add/").status_code == 200


def test_plan_sort_order_and_is_active_are_editable_in_the_list(staff: Client) -> None:
    plans = list(Plan.objects.order_by("sort_order", "price"))
    data: dict[str, Any] = {
        "form-TOTAL_FORMS": str(len(plans)),
        "form-INITIAL_FORMS": str(len(plans)),
        "_save": "Save",
    }
    for index, plan in enumerate(plans):
        data[f"form-{index}-id"] = plan.pk
        data[f"form-{index}-sort_order"] = str(plan.sort_order)
        if plan.is_active and plan.code != "standard":
            data[f"form-{index}-is_active"] = "on"
        if plan.code == "premium":
            data[f"form-{index}-sort_order"] = "5"

    response = staff.post(PLANS, data)

    assert response.status_code == 302, response.content[:2000]
    assert Plan.objects.get(code="premium").sort_order == 5
    assert Plan.objects.get(code="standard").is_active is False


def test_subscription_changelist_searches_and_filters(staff: Client) -> None:
    alice = UserFactory(username="alice", email="alice@example.com")
    bob = UserFactory(username="bob", email="bob@example.org")
    premium = Plan.objects.get(code="premium")
    alices = SubscriptionFactory(user=alice, plan=premium)
    bobs = SubscriptionFactory(user=bob, plan=premium, cancel_at_period_end=True)

    by_name = staff.get(SUBSCRIPTIONS, {"q": "alice"})
    by_email = staff.get(SUBSCRIPTIONS, {"q": "example.org"})
    by_id = staff.get(SUBSCRIPTIONS, {"q": alices.pk})
    filtered = staff.get(
        SUBSCRIPTIONS,
        {"status__exact": "active", "plan__id__exact": premium.pk, "cancel_at_period_end__exact": "1"},
    )

    for response in (by_name, by_email, by_id, filtered):
        assert response.status_code == 200
    assert list(by_name.context["cl"].result_list) == [alices]
    assert list(by_email.context["cl"].result_list) == [bobs]
    assert list(by_id.context["cl"].result_list) == [alices]
    assert list(filtered.context["cl"].result_list) == [bobs]


def test_subscription_changelist_query_count_does_not_grow_with_rows(
    staff: Client, django_assert_max_num_queries: Any
) -> None:
    SubscriptionFactory.create_batch(15)

    with django_assert_max_num_queries(12):
        response = staff.get(SUBSCRIPTIONS)

    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 15


def test_subscription_change_page_loads(staff: Client) -> None:
    subscription = SubscriptionFactory()

    response = staff.get(f"{SUBSCRIPTIONS}{subscription.pk}/change/")

    assert response.status_code == 200
    assert subscription.pk.encode() in response.content


def test_the_cancel_action_cancels_current_subscriptions_at_period_end(staff: Client) -> None:
    current = SubscriptionFactory()
    expired = SubscriptionFactory(status=Subscription.Status.EXPIRED)

    response = staff.post(
        SUBSCRIPTIONS, {"action": "cancel_at_period_end", "_selected_action": [current.pk, expired.pk]}
    )

    assert response.status_code == 302
    current.refresh_from_db()
    expired.refresh_from_db()
    assert current.status == Subscription.Status.ACTIVE
    assert current.cancel_at_period_end is True
    assert current.canceled_at is not None
    assert expired.cancel_at_period_end is False
    messages = [str(message) for message in get_messages(response.wsgi_request)]
    assert messages == ["Canceled 1 at period end. Skipped 1 (not current or already canceled)."]


def test_the_expire_action_ends_subscriptions_now(staff: Client) -> None:
    current = SubscriptionFactory()

    response = staff.post(SUBSCRIPTIONS, {"action": "expire_now", "_selected_action": [current.pk]})

    assert response.status_code == 302
    current.refresh_from_db()
    assert current.status == Subscription.Status.EXPIRED
    assert current.ended_at is not None
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["Expired 1."]


def test_the_actions_are_listed(staff: Client) -> None:
    response = staff.get(SUBSCRIPTIONS)

    assert b"Cancel at period end" in response.content
    assert b"Expire now" in response.content


def test_non_staff_users_are_sent_to_the_login_page(client: Client, user: Any) -> None:
    client.force_login(user)

    response = client.get(SUBSCRIPTIONS)

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_adding_a_second_current_subscription_is_a_form_error_not_a_500(staff: Client) -> None:
    existing = SubscriptionFactory()
    plan = Plan.objects.get(code="standard")

    response = staff.post(
        f"{SUBSCRIPTIONS}add/",
        {
            "user": existing.user_id,
            "plan": plan.pk,
            "status": "active",
            "current_period_start_0": "2027-01-01",
            "current_period_start_1": "00:00:00",
            "current_period_end_0": "2099-02-01",
            "current_period_end_1": "00:00:00",
        },
    )

    assert response.status_code == 200  # the form again, with the error
    assert b"This user already has a current (active or past due) subscription." in response.content
    assert Subscription.objects.filter(user=existing.user).count() == 1
