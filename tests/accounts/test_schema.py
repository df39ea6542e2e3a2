"""The OpenAPI schema describes the auth endpoints and the bearer scheme."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient


@pytest.fixture(scope="module")
def schema(django_db_blocker: Any) -> dict[str, Any]:
    with django_db_blocker.unblock():
        response = APIClient().get("/api/schema", {"format": "json"})
    assert response.status_code == 200
    return dict(response.json())


def test_bearer_scheme_is_declared(schema: dict[str, Any]) -> None:
    scheme = schema["components"]["securitySchemes"]["bearerAuth"]

    assert scheme["type"] == "http"
    assert scheme["scheme"] == "bearer"
    assert {"bearerAuth": []} in schema["paths"]["/api/auth/me"]["get"]["security"]


@pytest.mark.parametrize(
    ("path", "method", "statuses"),
    [
        ("/api/auth/register", "post", {"201", "400", "429"}),
        ("/api/auth/login", "post", {"200", "400", "401", "429"}),
        ("/api/auth/logout", "post", {"204", "401"}),
        ("/api/auth/me", "get", {"200", "401"}),
        ("/api/auth/me", "patch", {"200", "400", "401"}),
    ],
)
def test_endpoints_describe_their_answers(
    schema: dict[str, Any], path: str, method: str, statuses: set[str]
) -> None:
    operation = schema["paths"][path][method]

    assert statuses <= set(operation["responses"])
    if "429" in statuses:
        assert "Retry-After" in operation["responses"]["429"]["headers"]


def test_login_and_register_need_no_credentials(schema: dict[str, Any]) -> None:
    for path in ("/api/auth/login", "/api/auth/register"):
        security = schema["paths"][path]["post"].get("security", [])
        assert all(entry == {} for entry in security) or not security
        body = schema["paths"][path]["post"]["requestBody"]["content"]
        assert list(body) == ["application/json"]
