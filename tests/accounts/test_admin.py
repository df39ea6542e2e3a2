"""The admin for users and tokens, and its effect on API tokens."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.admin.utils import quote
from django.test import Client

from accounts.models import AuthToken, User
from accounts.token_cache import token_digest
from tests.accounts.conftest import bearer_client, login
from tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def user_url(user: Any, page: str) -> str:
    # The admin quotes ids in URLs ("_" becomes "_5F"): a raw "usr_5C..." would unquote to "usr\\...".
    return f"/admin/accounts/user/{quote(user.pk)}/{page}/"


@pytest.fixture
def admin_client(staff_user: Any) -> Client:
    client = Client()
    client.force_login(staff_user)
    return client


@pytest.fixture
def cached_token(user: Any) -> str:
    token = str(login(user)["token"])
    assert bearer_client(token).get("/api/auth/me").status_code == 200  # now cached
    return token


@pytest.mark.parametrize("identifier", ["username", "email"])
def test_staff_log_in_to_the_admin_with_username_or_email(staff_user: Any, identifier: str) -> None:
    client = Client()
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": getattr(staff_user, identifier).upper(), "password": DEFAULT_PASSWORD},
    )

    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_non_staff_cannot_use_the_admin(user: Any) -> None:
    client = Client()
    response = client.post(
        "/admin/login/?next=/admin/", {"username": user.username, "password": DEFAULT_PASSWORD}
    )

    assert response.status_code == 200  # the form again, with an error
    assert client.get("/admin/").status_code == 302


@pytest.mark.parametrize("user_id", [None, "usr_5C_41xyz"], ids=["random-id", "id-that-looks-quoted"])
def test_user_pages_load(admin_client: Client, user_id: str | None) -> None:
    user = UserFactory(**({"id": user_id} if user_id else {}))
    changelist = admin_client.get("/admin/accounts/user/", {"q": user.email})
    filtered = admin_client.get(
        "/admin/accounts/user/", {"is_active__exact": "1", "show_adult_content__exact": "0"}
    )
    change = admin_client.get(user_url(user, "change"))
    add = admin_client.get("/admin/accounts/user/add/")
    password = admin_client.get(user_url(user, "password"))

    assert changelist.status_code == 200
    assert user.username in changelist.content.decode()
    assert filtered.status_code == 200
    assert change.status_code == 200
    assert user.pk in change.content.decode()  # the id, read-only
    assert add.status_code == 200
    assert password.status_code == 200


def test_add_user(admin_client: Client) -> None:
    response = admin_client.post(
        "/admin/accounts/user/add/",
        {
            "username": "addedbystaff",
            "email": "added@example.com",
            "display_name": "Added",
            "usable_password": "true",
            "password1": "plum-orbit-lantern-42",
            "password2": "plum-orbit-lantern-42",
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    user = User.objects.get(username="addedbystaff")
    assert user.password.startswith("argon2$argon2id$")
    assert login(user, password="plum-orbit-lantern-42")["token"]


def test_add_user_refuses_an_email_taken_in_another_case(admin_client: Client) -> None:
    UserFactory(email="taken@example.com")

    response = admin_client.post(
        "/admin/accounts/user/add/",
        {
            "username": "second",
            "email": "TAKEN@example.com",
            "usable_password": "true",
            "password1": "plum-orbit-lantern-42",
            "password2": "plum-orbit-lantern-42",
        },
    )

    assert response.status_code == 200
    assert "A user with that email address already exists." in response.content.decode()
    assert not User.objects.filter(username="second").exists()


def change_form(user: Any, **changes: Any) -> dict[str, Any]:
    data = {
        "username": user.username,
        "email": user.email,
        "display_name": user.display_name,
        "first_name": "",
        "last_name": "",
        "is_active": "on",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def test_editing_a_user_refreshes_the_api_view_of_them(
    admin_client: Client, user: Any, cached_token: str, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            user_url(user, "change"), change_form(user, display_name="Edited By Staff")
        )

    assert response.status_code == 302, response.content.decode()[:3000]
    assert bearer_client(cached_token).get("/api/auth/me").json()["display_name"] == "Edited By Staff"


def test_deactivating_a_user_in_the_admin_stops_their_tokens(
    admin_client: Client, user: Any, cached_token: str, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(user_url(user, "change"), change_form(user, is_active=None))

    assert response.status_code == 302
    assert bearer_client(cached_token).get("/api/auth/me").status_code == 401


def test_deactivate_action(
    admin_client: Client, user: Any, cached_token: str, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/accounts/user/", {"action": "deactivate_users", "_selected_action": [user.pk]}
        )

    assert response.status_code == 302
    assert bearer_client(cached_token).get("/api/auth/me").status_code == 401
    assert not User.objects.get(pk=user.pk).is_active


def test_changing_a_password_in_the_admin_revokes_the_users_tokens(
    admin_client: Client, user: Any, cached_token: str, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            user_url(user, "password"),
            {
                "password1": "a new passphrase 99",
                "password2": "a new passphrase 99",
                "usable_password": "true",
            },
        )

    assert response.status_code == 302, response.content.decode()[:2000]
    assert bearer_client(cached_token).get("/api/auth/me").status_code == 401
    assert not AuthToken.objects.filter(user=user).exists()


def test_deleting_a_user_in_the_admin_stops_their_tokens(
    admin_client: Client, user: Any, cached_token: str, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(user_url(user, "delete"), {"post": "yes"})

    assert response.status_code == 302
    assert not User.objects.filter(pk=user.pk).exists()
    assert bearer_client(cached_token).get("/api/auth/me").status_code == 401


def test_token_pages_load_and_cannot_add(admin_client: Client, user: Any, cached_token: str) -> None:
    digest = token_digest(cached_token)

    changelist = admin_client.get("/admin/accounts/authtoken/", {"q": user.username})
    change = admin_client.get(f"/admin/accounts/authtoken/{quote(digest)}/change/")
    add = admin_client.get("/admin/accounts/authtoken/add/")

    assert changelist.status_code == 200
    assert digest[:12] in changelist.content.decode()
    assert cached_token not in changelist.content.decode()
    assert change.status_code == 200
    assert add.status_code == 403


def test_revoke_selected_tokens(
    admin_client: Client, user: Any, cached_token: str, django_capture_on_commit_callbacks: Any
) -> None:
    kept = str(login(user)["token"])
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/accounts/authtoken/",
            {"action": "revoke_tokens", "_selected_action": [token_digest(cached_token)]},
        )

    assert response.status_code == 302
    assert bearer_client(cached_token).get("/api/auth/me").status_code == 401
    assert bearer_client(kept).get("/api/auth/me").status_code == 200


def test_the_plain_delete_action_is_not_offered(admin_client: Client, cached_token: str) -> None:
    page = admin_client.get("/admin/accounts/authtoken/").content.decode()

    assert "revoke_tokens" in page
    assert "delete_selected" not in page
