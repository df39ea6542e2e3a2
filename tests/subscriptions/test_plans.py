"""The default plans and GET /api/subscriptions/plans."""

from __future__ import annotations

import importlib
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from rest_framework.test import APIClient

from subscriptions.models import Plan
from tests.factories import PlanFactory

URL = "/api/subscriptions/plans"
PLAN_KEYS = {
    "id",
    "code",
    "name",
    "price",
    "currency",
    "interval",
    "max_resolution",
    "concurrent_streams",
    "features",
    "sort_order",
}

pytestmark = pytest.mark.django_db


def test_migrations_create_the_default_plans() -> None:
    plans = {plan.code: plan for plan in Plan.objects.all()}

    assert set(plans) >= {"free", "standard", "premium", "premium-yearly"}
    limits = {
        code: (
            plans[code].price,
            plans[code].interval,
            plans[code].max_resolution,
            plans[code].concurrent_streams,
        )
        for code in ("free", "standard", "premium", "premium-yearly")
    }
    assert limits == {
        "free": (Decimal("0.00"), "month", 480, 1),
        "standard": (Decimal("9.99"), "month", 720, 2),
        "premium": (Decimal("15.99"), "month", 1080, 4),
        "premium-yearly": (Decimal("159.90"), "year", 1080, 4),
    }
    assert all(plan.is_active and plan.currency == "USD" and plan.features for plan in plans.values())
    assert all(plan.id.startswith("plan_") for plan in plans.values())


def test_default_plans_migration_is_idempotent_and_keeps_staff_edits() -> None:
    migration = importlib.import_module("subscriptions.migrations.0002_default_plans")
    state_apps = MigrationLoader(connection).project_state(("subscriptions", "0002_default_plans")).apps
    Plan.objects.filter(code="standard").update(price=Decimal("11.00"))

    with connection.schema_editor() as editor:
        migration.create_default_plans(state_apps, editor)

    assert Plan.objects.filter(code__in=["free", "standard", "premium", "premium-yearly"]).count() == 4
    assert Plan.objects.get(code="standard").price == Decimal("11.00")


def test_lists_active_plans_in_sort_order(api_client: APIClient) -> None:
    PlanFactory(code="family", sort_order=15, price=Decimal("12.50"))

    response = api_client.get(URL)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"data"}
    assert [plan["code"] for plan in body["data"]] == [
        "free",
        "standard",
        "family",
        "premium",
        "premium-yearly",
    ]
    standard = next(plan for plan in body["data"] if plan["code"] == "standard")
    assert set(standard) == PLAN_KEYS
    assert standard["price"] == "9.99"
    assert standard["currency"] == "USD"
    assert standard["interval"] == "month"
    assert standard["max_resolution"] == 720
    assert standard["concurrent_streams"] == 2
    assert standard["id"].startswith("plan_")
    assert isinstance(standard["features"], list)
    free = next(plan for plan in body["data"] if plan["code"] == "free")
    assert free["price"] == "0.00"


def test_inactive_plans_are_hidden(api_client: APIClient) -> None:
    PlanFactory(code="legacy", is_active=False)
    Plan.objects.filter(code="standard").update(is_active=False)

    codes = [plan["code"] for plan in api_client.get(URL).json()["data"]]

    assert "legacy" not in codes
    assert "standard" not in codes
    assert "premium" in codes


def test_needs_no_authentication_and_ignores_a_bad_token(api_client: APIClient) -> None:
    api_client.credentials(HTTP_AUTHORIZATION="Bearer not-a-real-token")

    assert api_client.get(URL).status_code == 200


def test_field_selection_returns_only_the_named_fields(api_client: APIClient) -> None:
    response = api_client.get(URL, {"fields": "code,price"})

    assert response.status_code == 200
    data = response.json()["data"]
    assert data
    assert all(set(plan) == {"code", "price"} for plan in data)
    assert {"code": "premium", "price": "15.99"} in data


@pytest.mark.parametrize("fields", ["code,password", "user", ","])
def test_unknown_or_empty_field_selection_is_a_400(api_client: APIClient, fields: str) -> None:
    response = api_client.get(URL, {"fields": fields})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert "fields" in error["fields"]


def test_runs_one_query(api_client: APIClient, django_assert_num_queries: Any) -> None:
    PlanFactory.create_batch(5)

    with django_assert_num_queries(1):
        response = api_client.get(URL)

    assert response.status_code == 200
    assert len(response.json()["data"]) == 4 + 5


def test_other_methods_are_405_in_the_error_shape(api_client: APIClient) -> None:
    response = api_client.post(URL, {}, format="json")

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
