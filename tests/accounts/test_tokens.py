"""Bearer tokens on requests: GET/PATCH /api/auth/me, the cache in front of the database, revocation."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import caches
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import services
from accounts.models import AuthToken, User
from accounts.token_cache import token_digest
from tests.accounts.conftest import bearer_client, error_code, login, requires_redis, run_in_other_process
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def token(user: Any) -> str:
    return str(login(user)["token"])


def test_me_returns_the_signed_in_user(user: Any, token: str) -> None:
    response = bearer_client(token).get("/api/auth/me")

    assert response.status_code == 200
    assert response.json() == {
        "id": user.pk,
        "username": user.username,
        "email": user.email,
        "display_name": user.display_name,
        "show_adult_content": False,
        "is_staff": False,
        "created_at": response.json()["created_at"],
    }


def test_me_without_credentials_is_401_with_a_bearer_challenge() -> None:
    response = APIClient().get("/api/auth/me")

    assert response.status_code == 401
    assert error_code(response) == "not_authenticated"
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


@pytest.mark.parametrize(
    "header",
    [
        "Bearer vpt_thisTokenWasNeverIssued0000000000000000000",
        "Bearer not-one-of-ours",
        "Bearer " + "vpt_" + "x" * 500,
        "Bearer",
        "Bearer two parts",
        "bearer vpt_lowercaseSchemeIsFineButTheTokenIsUnknown",
    ],
)
def test_bad_tokens_are_refused(header: str) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)

    response = client.get("/api/auth/me")

    assert response.status_code == 401
    assert error_code(response) == "invalid_token"
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_expired_token_is_refused(user: Any, token: str) -> None:
    AuthToken.objects.filter(user=user).update(expires_at=timezone.now() - timedelta(seconds=1))

    response = bearer_client(token).get("/api/auth/me")

    assert response.status_code == 401
    assert error_code(response) == "token_expired"


def test_a_token_in_use_stops_working_when_it_expires(user: Any, settings: Any) -> None:
    settings.AUTH_TOKEN_TTL = 2
    client = bearer_client(login(user)["token"])
    assert client.get("/api/auth/me").status_code == 200  # cached, for less than the token's life

    time.sleep(2.1)
    response = client.get("/api/auth/me")

    assert response.status_code == 401
    assert error_code(response) == "token_expired"


def test_token_of_a_deactivated_user_is_refused(user: Any, token: str) -> None:
    User.objects.filter(pk=user.pk).update(is_active=False)

    response = bearer_client(token).get("/api/auth/me")

    assert response.status_code == 401


@requires_redis
def test_a_cached_token_check_runs_no_query(token: str, django_assert_num_queries: Any) -> None:
    client = bearer_client(token)
    with django_assert_num_queries(1):  # the first check reads the token and its user once
        assert client.get("/api/auth/me").status_code == 200

    with django_assert_num_queries(0):
        response = client.get("/api/auth/me")

    assert response.status_code == 200
    assert response.json()["username"]


@requires_redis
def test_cached_user_loads_unsnapshotted_fields_from_the_database(user: Any, token: str) -> None:
    from accounts.selectors import token_user_get

    token_user_get(token=token)  # caches the snapshot
    cached_user, _ = token_user_get(token=token)

    assert cached_user.pk == user.pk
    assert cached_user.password == user.password  # loaded on access, not an empty default
    cached_user.display_name = "Renamed"
    cached_user.save(update_fields=["display_name"])
    user.refresh_from_db()
    assert user.display_name == "Renamed"
    assert user.check_password("correct horse battery staple")


def test_patch_me_changes_the_profile_and_every_token_sees_it(
    user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    first = bearer_client(login(user)["token"])
    second = bearer_client(login(user)["token"])
    assert second.get("/api/auth/me").json()["display_name"] == user.display_name  # cached

    with django_capture_on_commit_callbacks(execute=True):
        response = first.patch(
            "/api/auth/me", {"display_name": "Night Owl", "show_adult_content": True}, format="json"
        )

    assert response.status_code == 200, response.content
    assert response.json()["display_name"] == "Night Owl"
    seen = second.get("/api/auth/me").json()
    assert seen["display_name"] == "Night Owl"
    assert seen["show_adult_content"] is True
    user.refresh_from_db()
    assert user.display_name == "Night Owl"


@pytest.mark.parametrize(
    "body",
    [{"email": "new@example.com"}, {"is_staff": True}, {"display_name": 7}, {"display_name": "x" * 101}],
)
def test_patch_me_refuses_other_fields_and_bad_values(user: Any, token: str, body: dict[str, Any]) -> None:
    response = bearer_client(token).patch("/api/auth/me", body, format="json")

    assert response.status_code == 400
    assert set(body) <= set(response.json()["error"]["fields"])
    fresh = User.objects.get(pk=user.pk)
    assert (fresh.email, fresh.is_staff, fresh.display_name) == (user.email, False, user.display_name)


def test_password_change_revokes_every_token(
    user: Any, token: str, django_capture_on_commit_callbacks: Any
) -> None:
    client = bearer_client(token)
    assert client.get("/api/auth/me").status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        services.user_password_set(user=user, password="a brand new passphrase 7")

    assert client.get("/api/auth/me").status_code == 401
    assert login(user, password="a brand new passphrase 7")["token"]


def test_deleting_an_account_stops_its_tokens(
    user: Any, token: str, django_capture_on_commit_callbacks: Any
) -> None:
    client = bearer_client(token)
    assert client.get("/api/auth/me").status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        services.user_delete(user=user)

    assert client.get("/api/auth/me").status_code == 401
    assert not User.objects.filter(pk=user.pk).exists()


def test_works_without_redis(user: Any, django_capture_on_commit_callbacks: Any) -> None:
    """With Redis unreachable, token checks and throttles fall back to the database / nothing."""
    unreachable = {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.1, "SOCKET_TIMEOUT": 0.1, "IGNORE_EXCEPTIONS": True},
    }
    with override_settings(
        CACHES={"default": unreachable, "tokens": unreachable},
        SESSION_ENGINE="django.contrib.sessions.backends.db",
    ):
        caches["tokens"].set("probe", 1)
        assert caches["tokens"].get("probe") is None  # really unreachable
        client = bearer_client(login(user)["token"])
        assert client.get("/api/auth/me").status_code == 200
        with django_capture_on_commit_callbacks(execute=True):
            assert client.post("/api/auth/logout").status_code == 204
        assert client.get("/api/auth/me").status_code == 401


# --- several processes ------------------------------------------------------------

REVOKE = """
import os
from accounts.services import token_revoke
token_revoke(digest=ARGS[0])
result = {"pid": os.getpid()}
"""

CHECK = """
import os
from accounts.selectors import TokenRejected, token_user_get
try:
    user, _ = token_user_get(token=ARGS[0])
    result = {"pid": os.getpid(), "user": user.pk}
except TokenRejected as exc:
    result = {"pid": os.getpid(), "rejected": exc.code}
"""


@requires_redis
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_token_revoked_in_another_process_is_refused_here_at_once() -> None:
    user = UserFactory()
    token = login(user)["token"]
    client = bearer_client(token)
    assert client.get("/api/auth/me").status_code == 200  # cached in Redis

    other = run_in_other_process(REVOKE, token_digest(token))

    assert other["pid"] != os.getpid()
    response = client.get("/api/auth/me")
    assert response.status_code == 401
    assert error_code(response) == "invalid_token"


@requires_redis
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_logout_here_is_seen_by_another_process_at_once() -> None:
    user = UserFactory()
    token = login(user)["token"]
    assert run_in_other_process(CHECK, token)["user"] == user.pk  # that process cached it

    assert bearer_client(token).post("/api/auth/logout").status_code == 204

    assert run_in_other_process(CHECK, token)["rejected"] == "invalid_token"


@requires_redis
def test_the_light_token_check_agrees_with_the_full_one(
    user: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """What the response cache asks (``token_viewer_get``): the same user and the same refusals
    as the authentication class, cached snapshot or not."""
    from accounts.selectors import TokenRejected, token_user_get, token_viewer_get

    fan = UserFactory(show_adult_content=True)
    token, fan_token = str(login(user)["token"]), str(login(fan)["token"])
    for candidate, owner in ((token, user), (fan_token, fan)):
        bearer_client(candidate).get("/api/auth/me")  # the snapshot is cached now
        viewer = token_viewer_get(token=candidate)
        full, _ = token_user_get(token=candidate)
        assert (viewer.pk, viewer.show_adult_content) == (full.pk, full.show_adult_content)
        assert (viewer.pk, viewer.show_adult_content) == (owner.pk, owner.show_adult_content)

    with django_capture_on_commit_callbacks(execute=True):
        services.tokens_revoke(digests=[token_digest(fan_token)])
    with pytest.raises(TokenRejected):
        token_viewer_get(token=fan_token)
    with pytest.raises(TokenRejected):
        token_viewer_get(token="vpt_not-a-token")
    settings.AUTH_TOKEN_TTL = 1
    short = str(login(user)["token"])
    bearer_client(short).get("/api/auth/me")
    time.sleep(1.1)
    with pytest.raises(TokenRejected) as expired:
        token_viewer_get(token=short)
    assert expired.value.code == "token_expired"
