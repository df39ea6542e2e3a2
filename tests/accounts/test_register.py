"""POST /api/auth/register."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from accounts.models import AuthToken, User
from tests.accounts.conftest import bearer_client, error_code
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

GOOD = {
    "username": "newviewer",
    "email": "New.Viewer@Example.COM",
    "password": "plum-orbit-lantern-42",
}


def register(body: Any, **extra: Any) -> Any:
    return APIClient().post("/api/auth/register", body, format="json", **extra)


def test_register_creates_the_account_and_logs_in() -> None:
    response = register({**GOOD, "display_name": "New Viewer", "show_adult_content": True})

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["token"].startswith("vpt_")
    assert body["token_type"] == "Bearer"
    assert body["user"]["username"] == "newviewer"
    assert body["user"]["email"] == "New.Viewer@example.com"  # the domain is normalised
    assert body["user"]["display_name"] == "New Viewer"
    assert body["user"]["show_adult_content"] is True
    assert body["user"]["is_staff"] is False
    assert body["user"]["id"].startswith("usr_")

    user = User.objects.get(username="newviewer")
    assert user.password.startswith("argon2$argon2id$")
    assert user.check_password(GOOD["password"])
    me = bearer_client(body["token"]).get("/api/auth/me")
    assert me.status_code == 200
    assert me.json()["id"] == user.pk


def test_optional_fields_default() -> None:
    response = register(GOOD)

    assert response.status_code == 201, response.content
    assert response.json()["user"]["display_name"] == ""
    assert response.json()["user"]["show_adult_content"] is False


def assert_nothing_created(users_before: int) -> None:
    assert User.objects.count() == users_before
    assert AuthToken.objects.count() == 0


def test_email_taken_in_another_case_is_a_field_error() -> None:
    UserFactory(username="first", email="new.viewer@example.com")

    response = register(GOOD)

    assert response.status_code == 400
    assert error_code(response) == "validation_error"
    assert "email" in response.json()["error"]["fields"]
    assert "username" not in response.json()["error"]["fields"]
    assert_nothing_created(1)


def test_username_taken_in_another_case_is_a_field_error() -> None:
    UserFactory(username="NewViewer")

    response = register(GOOD)

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["username"]
    assert_nothing_created(1)


@pytest.mark.parametrize(
    "password",
    ["password", "12345678", "short1", "newviewer1"],
    ids=["common", "numeric", "too-short", "like-username"],
)
def test_weak_password_is_refused(password: str) -> None:
    response = register({**GOOD, "password": password})

    assert response.status_code == 400
    assert error_code(response) == "validation_error"
    assert response.json()["error"]["fields"]["password"]
    assert_nothing_created(0)


def test_unknown_fields_are_refused_and_named() -> None:
    response = register({**GOOD, "is_staff": True, "plan": "gold"})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert "is_staff" in error["message"] and "plan" in error["message"]
    assert {"is_staff", "plan"} <= set(error["fields"])
    assert_nothing_created(0)


def test_malformed_json_is_refused() -> None:
    response = APIClient().post(
        "/api/auth/register", data='{"username": "newviewer", ', content_type="application/json"
    )

    assert response.status_code == 400
    assert error_code(response) == "malformed_request"
    assert_nothing_created(0)


def test_form_encoded_body_is_refused() -> None:
    response = APIClient().post("/api/auth/register", GOOD)  # multipart

    assert response.status_code == 415
    assert error_code(response) == "unsupported_media_type"
    assert_nothing_created(0)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("username", 12345),
        ("username", ["newviewer"]),
        ("email", None),
        ("password", 123456789012),
        ("show_adult_content", "yes"),
        ("show_adult_content", 1),
        ("display_name", {"first": "x"}),
    ],
)
def test_wrong_types_are_refused(field: str, value: Any) -> None:
    response = register({**GOOD, field: value})

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert_nothing_created(0)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("username", "u" * 151),
        ("display_name", "d" * 101),
        ("email", "e" * 250 + "@example.com"),
        ("password", "p4ss-" * 60),
        ("username", "has space"),
        ("username", "someone@example.com"),
        ("email", "not-an-email"),
    ],
)
def test_invalid_values_are_refused(field: str, value: str) -> None:
    response = register({**GOOD, field: value})

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert_nothing_created(0)


def test_body_must_be_an_object() -> None:
    response = register([GOOD])

    assert response.status_code == 400
    assert error_code(response) == "validation_error"
    assert_nothing_created(0)


def test_registrations_are_throttled_per_address(settings: Any) -> None:
    settings.REGISTRATION_LIMIT_IP = 2
    for n in range(2):
        ok = register({**GOOD, "username": f"viewer{n}", "email": f"viewer{n}@example.com"})
        assert ok.status_code == 201, ok.content

    refused = register({**GOOD, "username": "viewer9", "email": "viewer9@example.com"})
    elsewhere = register(
        {**GOOD, "username": "viewer8", "email": "viewer8@example.com"}, REMOTE_ADDR="198.51.100.7"
    )

    assert refused.status_code == 429
    assert error_code(refused) == "throttled"
    assert 1 <= int(refused["Retry-After"]) <= 3600
    assert not User.objects.filter(username="viewer9").exists()
    assert elsewhere.status_code == 201
