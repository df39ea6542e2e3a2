"""POST /api/subscriptions, GET /api/subscriptions/me, POST /api/subscriptions/me/cancel."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.test import APIClient

from subscriptions.models import Plan, Subscription
from tests.factories import PlanFactory, SubscriptionFactory

from .conftest import client_for

SUBSCRIBE = "/api/subscriptions"
ME = "/api/subscriptions/me"
CANCEL = "/api/subscriptions/me/cancel"
SUBSCRIPTION_KEYS = {
    "id",
    "plan",
    "status",
    "current_period_start",
    "current_period_end",
    "cancel_at_period_end",
    "canceled_at",
    "created_at",
}

pytestmark = pytest.mark.django_db


def current_of(user: Any) -> list[Subscription]:
    return list(Subscription.objects.filter(user=user, status__in=Subscription.CURRENT_STATUSES))


def snapshot(user: Any) -> list[tuple[Any, ...]]:
    return list(
        Subscription.objects.filter(user=user)
        .order_by("pk")
        .values_list(
            "pk", "plan_id", "status", "cancel_at_period_end", "canceled_at", "ended_at", "updated_at"
        )
    )


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    return error


# --- subscribe -------------------------------------------------------------------------------


def test_subscribe_by_plan_id(auth_client: APIClient, user: Any, standard: Plan) -> None:
    response = auth_client.post(SUBSCRIBE, {"plan_id": standard.pk}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == SUBSCRIPTION_KEYS
    assert body["id"].startswith("sub_")
    assert body["plan"]["id"] == standard.pk
    assert body["plan"]["code"] == "standard"
    assert body["plan"]["price"] == "9.99"
    assert body["status"] == "active"
    assert body["cancel_at_period_end"] is False
    assert body["canceled_at"] is None
    start = parse_datetime(body["current_period_start"])
    end = parse_datetime(body["current_period_end"])
    assert start is not None and end is not None
    assert abs(start - timezone.now()) < timedelta(minutes=1)
    assert timedelta(days=28) <= end - start <= timedelta(days=31)
    assert [sub.pk for sub in current_of(user)] == [body["id"]]


def test_subscribe_by_plan_code(auth_client: APIClient, user: Any) -> None:
    response = auth_client.post(SUBSCRIBE, {"plan": "premium-yearly"}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["plan"]["code"] == "premium-yearly"
    end, start = parse_datetime(body["current_period_end"]), parse_datetime(body["current_period_start"])
    assert end is not None and start is not None
    assert timedelta(days=365) <= end - start <= timedelta(days=366)


def test_change_plan_replaces_the_current_subscription(
    auth_client: APIClient, user: Any, standard: Plan, premium: Plan
) -> None:
    first = auth_client.post(SUBSCRIBE, {"plan_id": standard.pk}, format="json").json()

    response = auth_client.post(SUBSCRIBE, {"plan_id": premium.pk}, format="json")

    assert response.status_code == 201, response.content
    second = response.json()
    assert second["id"] != first["id"]
    assert second["plan"]["code"] == "premium"
    assert [sub.pk for sub in current_of(user)] == [second["id"]]
    old = Subscription.objects.get(pk=first["id"])
    assert old.status == Subscription.Status.CANCELED
    assert old.ended_at is not None and old.canceled_at is not None
    assert auth_client.get(ME).json()["id"] == second["id"]


def test_change_plan_after_canceling_at_period_end(
    auth_client: APIClient, user: Any, standard: Plan, premium: Plan
) -> None:
    auth_client.post(SUBSCRIBE, {"plan_id": standard.pk}, format="json")
    auth_client.post(CANCEL)

    response = auth_client.post(SUBSCRIBE, {"plan_id": premium.pk}, format="json")

    assert response.status_code == 201
    assert response.json()["cancel_at_period_end"] is False
    assert [sub.plan_id for sub in current_of(user)] == [premium.pk]


def test_subscribing_to_the_current_plan_is_a_409(auth_client: APIClient, user: Any, standard: Plan) -> None:
    auth_client.post(SUBSCRIBE, {"plan_id": standard.pk}, format="json")
    before = snapshot(user)

    response = auth_client.post(SUBSCRIBE, {"plan": "standard"}, format="json")

    assert_error(response, 409, "already_subscribed")
    assert snapshot(user) == before


def test_a_lapsed_subscription_does_not_block_resubscribing(
    auth_client: APIClient, user: Any, standard: Plan
) -> None:
    lapsed = SubscriptionFactory(
        user=user,
        plan=standard,
        current_period_start=timezone.now() - timedelta(days=40),
        current_period_end=timezone.now() - timedelta(days=10),
    )

    response = auth_client.post(SUBSCRIBE, {"plan_id": standard.pk}, format="json")

    assert response.status_code == 201, response.content
    lapsed.refresh_from_db()
    assert lapsed.status == Subscription.Status.EXPIRED
    assert lapsed.ended_at == lapsed.current_period_end
    assert [sub.pk for sub in current_of(user)] == [response.json()["id"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"plan_id": "plan_doesnotexist"}, "plan_id"),
        ({"plan": "platinum"}, "plan"),
        ({"plan_id": ""}, "plan_id"),
    ],
)
def test_unknown_plan_is_a_400_and_changes_nothing(
    auth_client: APIClient, user: Any, standard: Plan, body: dict[str, Any], field: str
) -> None:
    SubscriptionFactory(user=user, plan=standard)
    before = snapshot(user)

    response = auth_client.post(SUBSCRIBE, body, format="json")

    error = assert_error(response, 400, "validation_error")
    assert field in error["fields"]
    assert snapshot(user) == before


def test_inactive_plan_is_a_400(auth_client: APIClient, user: Any) -> None:
    retired = PlanFactory(is_active=False)

    response = auth_client.post(SUBSCRIBE, {"plan_id": retired.pk}, format="json")

    error = assert_error(response, 400, "validation_error")
    assert error["fields"]["plan_id"] == ["Unknown or inactive plan."]
    assert current_of(user) == []


def test_the_free_plan_is_not_subscribed_to(auth_client: APIClient, user: Any, premium: Plan) -> None:
    SubscriptionFactory(user=user, plan=premium)
    before = snapshot(user)

    response = auth_client.post(SUBSCRIBE, {"plan": "free"}, format="json")

    error = assert_error(response, 400, "validation_error")
    assert "free plan" in error["fields"]["plan"][0]
    assert snapshot(user) == before


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"plan_id"}),
        ({"plan_id": "x", "plan": "standard"}, {"plan"}),
        ({"plan_id": 42}, {"plan_id"}),
        ({"plan_id": True}, {"plan_id"}),
        ({"plan_id": ["plan_x"]}, {"plan_id"}),
        ({"plan_id": None}, {"plan_id"}),
        ({"plan": {"code": "standard"}}, {"plan"}),
        ({"plan": "standard", "coupon": "FREE", "user_id": "usr_x"}, {"coupon", "user_id"}),
    ],
)
def test_invalid_bodies_are_400_naming_the_fields(
    auth_client: APIClient, user: Any, body: dict[str, Any], fields: set[str]
) -> None:
    response = auth_client.post(SUBSCRIBE, body, format="json")

    error = assert_error(response, 400, "validation_error")
    assert set(error["fields"]) - {"non_field_errors"} == fields
    assert Subscription.objects.filter(user=user).count() == 0


def test_unknown_fields_are_named_in_the_error(auth_client: APIClient, user: Any) -> None:
    response = auth_client.post(SUBSCRIBE, {"plan": "standard", "trial_days": 30}, format="json")

    error = assert_error(response, 400, "validation_error")
    assert error["message"] == "Unknown field(s): trial_days."
    assert error["fields"]["trial_days"] == ["This field is not accepted here."]
    assert Subscription.objects.filter(user=user).count() == 0


@pytest.mark.parametrize("raw", ['{"plan": "standard"', "not json", '["standard"]', '"standard"', "null"])
def test_malformed_or_non_object_json_is_a_400(auth_client: APIClient, user: Any, raw: str) -> None:
    response = auth_client.post(SUBSCRIBE, raw, content_type="application/json")

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] in {"malformed_request", "validation_error"}
    assert Subscription.objects.filter(user=user).count() == 0


def test_malformed_json_has_its_own_code(auth_client: APIClient) -> None:
    response = auth_client.post(SUBSCRIBE, '{"plan": ', content_type="application/json")

    assert_error(response, 400, "malformed_request")


def test_a_form_body_is_a_415(auth_client: APIClient, user: Any) -> None:
    response = auth_client.post(SUBSCRIBE, {"plan": "standard"})  # multipart

    assert_error(response, 415, "unsupported_media_type")
    assert Subscription.objects.filter(user=user).count() == 0


@pytest.mark.parametrize(("method", "url"), [("post", SUBSCRIBE), ("get", ME), ("post", CANCEL)])
def test_unauthenticated_requests_are_401(api_client: APIClient, method: str, url: str) -> None:
    response = getattr(api_client, method)(
        url, {"plan": "standard"} if url == SUBSCRIBE else None, format="json"
    )

    assert_error(response, 401, "not_authenticated")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert Subscription.objects.count() == 0


# --- payment gateway -----------------------------------------------------------------------------


def test_the_gateway_charges_the_new_and_cancels_the_replaced_subscription(
    auth_client: APIClient,
    user: Any,
    standard: Plan,
    premium: Plan,
    recording_gateway: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        first = auth_client.post(SUBSCRIBE, {"plan_id": standard.pk}, format="json").json()
    with django_capture_on_commit_callbacks(execute=True):
        second = auth_client.post(SUBSCRIBE, {"plan_id": premium.pk}, format="json").json()

    assert recording_gateway.charged == [first["id"], second["id"]]
    assert recording_gateway.canceled == [first["id"]]


def test_a_declined_charge_is_a_402_and_changes_nothing(
    auth_client: APIClient, user: Any, standard: Plan, premium: Plan, settings: Any
) -> None:
    SubscriptionFactory(user=user, plan=standard)
    before = snapshot(user)
    settings.SUBSCRIPTIONS_PAYMENT_GATEWAY = "tests.subscriptions.gateways.DecliningGateway"

    response = auth_client.post(SUBSCRIBE, {"plan_id": premium.pk}, format="json")

    error = assert_error(response, 402, "payment_declined")
    assert error["message"] == "Your card was declined."
    assert snapshot(user) == before


def test_with_sales_closed_premium_cannot_be_had_for_free(
    auth_client: APIClient, user: Any, premium: Plan, settings: Any
) -> None:
    """A production with no processor runs ClosedPaymentGateway: nothing is granted unpaid."""
    settings.SUBSCRIPTIONS_PAYMENT_GATEWAY = "subscriptions.billing.ClosedPaymentGateway"

    response = auth_client.post(SUBSCRIBE, {"plan_id": premium.pk}, format="json")

    error = assert_error(response, 402, "payment_declined")
    assert error["message"] == "Subscriptions are not on sale yet."
    assert Subscription.objects.filter(user=user).count() == 0


def test_an_unreachable_gateway_is_a_503_and_changes_nothing(
    auth_client: APIClient, user: Any, premium: Plan, settings: Any
) -> None:
    settings.SUBSCRIPTIONS_PAYMENT_GATEWAY = "tests.subscriptions.gateways.UnreachableGateway"

    response = auth_client.post(SUBSCRIBE, {"plan_id": premium.pk}, format="json")

    assert_error(response, 503, "payment_unavailable")
    assert Subscription.objects.filter(user=user).count() == 0


# --- me ------------------------------------------------------------------------------------------


def test_me_is_404_without_a_subscription(auth_client: APIClient) -> None:
    assert_error(auth_client.get(ME), 404, "no_subscription")


def test_me_is_404_when_only_ended_subscriptions_exist(
    auth_client: APIClient, user: Any, standard: Plan
) -> None:
    SubscriptionFactory(user=user, plan=standard, status=Subscription.Status.EXPIRED)
    SubscriptionFactory(user=user, plan=standard, status=Subscription.Status.CANCELED)
    SubscriptionFactory(user=user, plan=standard, current_period_end=timezone.now() - timedelta(seconds=1))

    assert_error(auth_client.get(ME), 404, "no_subscription")


def test_me_returns_the_current_subscription(
    auth_client: APIClient, user: Any, premium: Plan, other_user: Any
) -> None:
    SubscriptionFactory(user=user, plan=premium, status=Subscription.Status.EXPIRED)
    current = SubscriptionFactory(user=user, plan=premium)
    SubscriptionFactory(user=other_user, plan=premium)

    response = auth_client.get(ME)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == SUBSCRIPTION_KEYS
    assert body["id"] == current.pk
    assert body["plan"]["code"] == "premium"
    assert body["plan"]["max_resolution"] == 1080


def test_me_after_subscribing_shows_the_new_subscription(auth_client: APIClient, premium: Plan) -> None:
    created = auth_client.post(SUBSCRIBE, {"plan_id": premium.pk}, format="json").json()

    assert auth_client.get(ME).json() == created


# --- cancel --------------------------------------------------------------------------------------


def test_cancel_at_period_end(auth_client: APIClient, user: Any, premium: Plan) -> None:
    subscription = SubscriptionFactory(user=user, plan=premium)

    response = auth_client.post(CANCEL)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"] == subscription.pk
    assert body["status"] == "active"
    assert body["cancel_at_period_end"] is True
    assert body["canceled_at"] is not None
    assert body["plan"]["code"] == "premium"
    assert parse_datetime(body["current_period_end"]) == subscription.current_period_end
    # Still current until the period ends.
    assert auth_client.get(ME).json()["cancel_at_period_end"] is True


def test_cancel_tells_the_gateway_after_commit(
    auth_client: APIClient,
    user: Any,
    premium: Plan,
    recording_gateway: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    subscription = SubscriptionFactory(user=user, plan=premium)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        auth_client.post(CANCEL)
        # Nothing reaches the gateway until the transaction commits.
        assert recording_gateway.canceled == []

    for callback in callbacks:
        callback()
    assert recording_gateway.canceled == [subscription.pk]


def test_canceling_twice_is_a_409(auth_client: APIClient, user: Any, premium: Plan) -> None:
    SubscriptionFactory(user=user, plan=premium)
    auth_client.post(CANCEL)
    before = snapshot(user)

    response = auth_client.post(CANCEL)

    assert_error(response, 409, "already_canceled")
    assert snapshot(user) == before


def test_cancel_without_a_subscription_is_a_404(auth_client: APIClient) -> None:
    assert_error(auth_client.post(CANCEL), 404, "no_subscription")


def test_cancel_refuses_a_body_with_fields(auth_client: APIClient, user: Any, premium: Plan) -> None:
    SubscriptionFactory(user=user, plan=premium)
    before = snapshot(user)

    response = auth_client.post(CANCEL, {"immediately": True}, format="json")

    error = assert_error(response, 400, "validation_error")
    assert error["fields"]["immediately"] == ["This field is not accepted here."]
    assert snapshot(user) == before


def test_cancel_only_touches_the_callers_subscription(user: Any, other_user: Any, premium: Plan) -> None:
    mine = SubscriptionFactory(user=user, plan=premium)
    theirs = SubscriptionFactory(user=other_user, plan=premium)

    client_for(user).post(CANCEL)

    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.cancel_at_period_end is True
    assert theirs.cancel_at_period_end is False
