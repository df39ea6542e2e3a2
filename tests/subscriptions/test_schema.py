"""The OpenAPI schema describes the subscriptions endpoints as they behave."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import include, path
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    GENERATOR_STATS.reset()
    generator = SchemaGenerator(patterns=[path("api/", include("subscriptions.api.urls"))])
    built: dict[str, Any] = generator.get_schema(request=None, public=True)
    assert not GENERATOR_STATS, "drf-spectacular warned while describing the subscriptions API"
    return built


def responses(schema: dict[str, Any], url: str, method: str) -> dict[str, Any]:
    result: dict[str, Any] = schema["paths"][url][method]["responses"]
    return result


def ref(content: dict[str, Any]) -> str:
    return str(content["content"]["application/json"]["schema"]["$ref"]).rsplit("/", 1)[-1]


def test_every_operation_lists_its_responses(schema: dict[str, Any]) -> None:
    assert set(responses(schema, "/api/subscriptions/plans", "get")) == {"200", "400"}
    assert set(responses(schema, "/api/subscriptions", "post")) == {
        "201", "400", "401", "402", "409", "415", "503"
    }  # fmt: skip
    assert set(responses(schema, "/api/subscriptions/me", "get")) == {"200", "401", "404"}
    assert set(responses(schema, "/api/subscriptions/me/cancel", "post")) == {
        "200", "400", "401", "404", "409", "415"
    }  # fmt: skip


def test_success_and_error_bodies_use_the_right_components(schema: dict[str, Any]) -> None:
    assert ref(responses(schema, "/api/subscriptions/plans", "get")["200"]) == "PlanList"
    subscribe = responses(schema, "/api/subscriptions", "post")
    assert ref(subscribe["201"]) == "Subscription"
    assert all(ref(subscribe[code]) == "Error" for code in ("400", "401", "402", "409", "503"))
    examples = subscribe["409"]["content"]["application/json"]["examples"]
    assert {example["value"]["error"]["code"] for example in examples.values()} == {
        "already_subscribed",
        "subscription_conflict",
    }
    assert ref(responses(schema, "/api/subscriptions/me", "get")["404"]) == "Error"


def test_request_and_component_shapes(schema: dict[str, Any]) -> None:
    components = schema["components"]["schemas"]
    body = schema["paths"]["/api/subscriptions"]["post"]["requestBody"]
    assert ref(body) == "SubscribeRequest"
    assert set(components["SubscribeRequest"]["properties"]) == {"plan_id", "plan"}
    assert set(components["Plan"]["properties"]) == {
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
    assert components["Plan"]["properties"]["price"]["type"] == "string"
    assert set(components["Subscription"]["properties"]) == {
        "id",
        "plan",
        "status",
        "current_period_start",
        "current_period_end",
        "cancel_at_period_end",
        "canceled_at",
        "created_at",
    }
    assert components["Subscription"]["properties"]["plan"]["allOf"][0]["$ref"].endswith("/Plan")


def test_plans_are_public_and_take_fields(schema: dict[str, Any]) -> None:
    operation = schema["paths"]["/api/subscriptions/plans"]["get"]
    assert not operation.get("security")
    assert [parameter["name"] for parameter in operation["parameters"]] == ["fields"]
    assert schema["paths"]["/api/subscriptions/me"]["get"]["security"]


@pytest.mark.django_db
def test_the_served_schema_includes_the_subscriptions_endpoints(client: Any) -> None:
    response = client.get("/api/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/api/subscriptions", "/api/subscriptions/plans", "/api/subscriptions/me"} <= set(paths)
