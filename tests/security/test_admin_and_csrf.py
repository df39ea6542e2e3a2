"""Browser sessions: writes need the CSRF token, and the admin is for staff only."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse

from accounts.models import User
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.security.conftest import World
from videos.models import Video

UNSAFE = [
    ("POST", "/api/videos", {"title": "forged"}),
    ("PATCH", "/api/videos/{video}", {"title": "forged"}),
    ("DELETE", "/api/videos/{video}", None),
    ("PATCH", "/api/auth/me", {"display_name": "forged"}),
    ("POST", "/api/auth/logout", None),
    ("POST", "/api/subscriptions/me/cancel", None),
    ("POST", "/api/notifications/read-all", None),
]


def _session(user: User) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def _send(client: Client, method: str, path: str, body: Any, **headers: str) -> Any:
    data = b"" if body is None else json.dumps(body)
    return client.generic(method, path, data, content_type="application/json", headers=headers)


@pytest.mark.parametrize(("method", "path", "body"), UNSAFE)
def test_session_writes_without_the_csrf_token_are_refused(
    world: World, method: str, path: str, body: Any
) -> None:
    client = _session(world.owner)
    path = path.format(video=world.video.pk)
    videos_before = sorted(Video.objects.values_list("id", "title"))
    response = _send(client, method, path, body)
    assert response.status_code == 403, response.content
    assert response.json()["error"]["code"] == "permission_denied"
    assert "CSRF" in response.json()["error"]["message"]
    assert sorted(Video.objects.values_list("id", "title")) == videos_before
    world.owner.refresh_from_db()
    world.subscription.refresh_from_db()
    assert not world.subscription.cancel_at_period_end
    assert client.get("/api/auth/me").status_code == 200  # still logged in: logout was refused


def test_session_writes_with_the_csrf_token_go_through(world: World) -> None:
    client = _session(world.owner)
    client.get("/admin/login/")  # any page that renders a form sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    response = _send(client, "POST", "/api/videos", {"title": "with token"}, X_CSRFToken=token)
    assert response.status_code == 201, response.content
    # A token from another session does not help.
    other = _session(world.user)
    assert (
        _send(other, "POST", "/api/videos", {"title": "stolen token"}, X_CSRFToken=token).status_code == 403
    )


def test_reads_and_bearer_requests_need_no_csrf_token(world: World) -> None:
    assert _session(world.owner).get("/api/auth/me").status_code == 200
    bearer = world.api_client("owner")
    assert bearer.post("/api/videos", {"title": "bearer"}, format="json").status_code == 201


def _admin_urls() -> list[str]:
    urls = [reverse("admin:index")]
    for model in admin.site._registry:
        info = (model._meta.app_label, model._meta.model_name)
        urls.append(reverse("admin:{}_{}_changelist".format(*info)))
        urls.append(reverse("admin:{}_{}_add".format(*info)))
    return urls


def test_every_admin_page_is_for_staff_only(world: World) -> None:
    urls = _admin_urls()
    assert len(urls) > 5
    for role in ("anonymous", "user", "owner"):
        client = world.session_client(role)
        for url in urls:
            response = client.get(url)
            assert response.status_code == 302, (role, url, response.status_code)
            assert response["Location"].startswith(reverse("admin:login"))
    staff = world.session_client("staff")
    statuses = {url: staff.get(url).status_code for url in urls}
    assert all(status in (200, 403) for status in statuses.values()), statuses  # 403: no "add" for some
    assert statuses[reverse("admin:index")] == 200


def test_a_staff_bearer_token_does_not_open_the_admin(world: World) -> None:
    response = world.api_client("staff").get(reverse("admin:index"))
    assert response.status_code == 302


def test_the_admin_login_refuses_non_staff(db: Any, fast_passwords: None) -> None:
    user = UserFactory()
    client = Client()
    response = client.post(reverse("admin:login"), {"username": user.username, "password": DEFAULT_PASSWORD})
    assert response.status_code == 200  # the form again, with an error
    assert client.get(reverse("admin:index")).status_code == 302
    staff = UserFactory(is_staff=True)
    response = client.post(reverse("admin:login"), {"username": staff.username, "password": DEFAULT_PASSWORD})
    assert response.status_code == 302
    assert client.get(reverse("admin:index")).status_code == 200
