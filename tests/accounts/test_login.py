"""POST /api/auth/login and POST /api/auth/logout."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.test import APIClient

from accounts.models import AuthToken
from accounts.selectors import user_get_for_login
from tests.accounts.conftest import bearer_client, error_code, login, post_login
from tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("identifier", ["Alice", "alice", "ALICE@EXAMPLE.COM", "alice@example.com"])
def test_login_by_username_or_email_in_any_case(identifier: str, settings: Any) -> None:
    user = UserFactory(username="Alice", email="alice@example.com")

    response = post_login(identifier, DEFAULT_PASSWORD)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["token"].startswith("vpt_")
    assert body["token_type"] == "Bearer"
    expires_at = parse_datetime(body["expires_at"])
    assert expires_at is not None
    expected = timezone.now() + timedelta(seconds=settings.AUTH_TOKEN_TTL)
    assert abs((expires_at - expected).total_seconds()) < 60
    assert body["user"] == {
        "id": user.pk,
        "username": "Alice",
        "email": "alice@example.com",
        "display_name": user.display_name,
        "show_adult_content": False,
        "is_staff": False,
        "created_at": body["user"]["created_at"],
    }
    user.refresh_from_db()
    assert user.last_login is not None


def test_only_the_digest_of_the_token_is_stored(user: Any) -> None:
    token = login(user)["token"]

    stored = AuthToken.objects.get(user=user)
    assert stored.digest == hashlib.sha256(token.encode()).hexdigest()
    assert token not in {stored.digest, stored.user_agent}


def test_each_login_issues_a_new_token(user: Any) -> None:
    first = login(user)["token"]
    second = login(user)["token"]

    assert first != second
    assert bearer_client(first).get("/api/auth/me").status_code == 200
    assert bearer_client(second).get("/api/auth/me").status_code == 200


def test_wrong_password_and_unknown_user_get_the_same_answer(user: Any) -> None:
    wrong_password = post_login(user.username, "not the password")
    unknown_user = post_login("nobody-here", DEFAULT_PASSWORD)

    for response in (wrong_password, unknown_user):
        assert response.status_code == 401
        assert error_code(response) == "invalid_credentials"
        assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert wrong_password.json() == unknown_user.json()
    assert not AuthToken.objects.exists()


def test_inactive_user_cannot_log_in() -> None:
    user = UserFactory(is_active=False)

    response = post_login(user.username, DEFAULT_PASSWORD)

    assert response.status_code == 401
    assert error_code(response) == "invalid_credentials"


def test_a_stale_token_sent_along_does_not_block_login(user: Any) -> None:
    response = post_login(user.username, DEFAULT_PASSWORD, HTTP_AUTHORIZATION="Bearer vpt_revoked-long-ago")

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "alice"}, "password"),
        ({"password": DEFAULT_PASSWORD}, "username"),
        ({"username": 42, "password": DEFAULT_PASSWORD}, "username"),
        ({"username": "alice", "password": DEFAULT_PASSWORD, "remember": True}, "remember"),
    ],
)
def test_malformed_login_is_a_validation_error(body: dict[str, Any], field: str) -> None:
    response = APIClient().post("/api/auth/login", body, format="json")

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_login_lookup_uses_the_case_insensitive_indexes(user: Any) -> None:
    """The username-or-email lookup is served by the lower() unique indexes, not a scan."""
    with CaptureQueriesContext(connection) as queries:
        user_get_for_login(identifier="Someone@Example.com")
    sql = queries.captured_queries[-1]["sql"]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}")
        plan = "\n".join(row[0] for row in cursor.fetchall())

    assert "accounts_user_username_ci_unique" in plan, plan
    assert "accounts_user_email_ci_unique" in plan, plan


# --- logout -----------------------------------------------------------------------


def test_logout_revokes_the_token_at_once(user: Any, django_capture_on_commit_callbacks: Any) -> None:
    token = login(user)["token"]
    other_token = login(user)["token"]
    client = bearer_client(token)
    assert client.get("/api/auth/me").status_code == 200  # cached now

    with django_capture_on_commit_callbacks(execute=True):  # the request's commit
        response = client.post("/api/auth/logout")

    assert response.status_code == 204
    after = client.get("/api/auth/me")
    assert after.status_code == 401
    assert error_code(after) == "invalid_token"
    assert client.post("/api/auth/logout").status_code == 401
    assert bearer_client(other_token).get("/api/auth/me").status_code == 200


def test_logout_needs_credentials() -> None:
    response = APIClient().post("/api/auth/logout")

    assert response.status_code == 401
    assert error_code(response) == "not_authenticated"


def test_logout_with_a_session_ends_the_session(user: Any) -> None:
    client = APIClient()
    client.force_login(user)
    assert client.get("/api/auth/me").json()["id"] == user.pk

    response = client.post("/api/auth/logout")

    assert response.status_code == 204
    assert client.get("/api/auth/me").status_code == 401
