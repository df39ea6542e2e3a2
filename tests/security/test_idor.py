"""Object-level authorisation (IDOR): knowing another user's ids gets nothing, and changes nothing.

The owner's video is private; the other user holds a real bearer token and every id. Each
attempt must answer as if the object did not exist (404, never 403: that would confirm it), and
the object must be exactly as it was afterwards. Mass assignment (sending ``owner`` or
``is_staff`` along) is refused outright.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from accounts.models import Notification, User
from streaming.models import MediaFile
from subscriptions.models import Subscription
from tests.security.conftest import World
from videos.models import Video


@pytest.fixture
def intruder(world: World) -> APIClient:
    return world.api_client("user")


def _snapshot(world: World) -> dict[str, Any]:
    video = Video.objects.get(pk=world.video.pk)
    media = MediaFile.objects.filter(video_id=world.video.pk).values().first()
    subscription = Subscription.objects.filter(pk=world.subscription.pk).values().first()
    notification = Notification.objects.filter(pk=world.notification.pk).values().first()
    return {
        "video": (video.title, video.description, video.privacy, video.status, video.owner_id),
        "media": media,
        "subscription": subscription,
        "notification": notification,
    }


VIDEO_ATTEMPTS = [
    ("GET", "/api/videos/{video}", None),
    ("PATCH", "/api/videos/{video}", {"title": "Hijacked", "privacy": "public"}),
    ("DELETE", "/api/videos/{video}", None),
    ("POST", "/api/videos/{video}/upload/complete", {}),
    ("GET", "/api/videos/{video}/media", None),
    ("GET", "/api/videos/{video}/stream", None),
    ("GET", "/api/videos/{video}/recommendations", None),
]


@pytest.mark.parametrize(("method", "path", "body"), VIDEO_ATTEMPTS)
def test_another_users_private_video_is_invisible_and_unchanged(
    world: World, intruder: APIClient, method: str, path: str, body: Any
) -> None:
    before = _snapshot(world)
    response = intruder.generic(
        method, path.format(video=world.video.pk), b"" if body is None else json.dumps(body),
        content_type="application/json",
    )  # fmt: skip
    assert response.status_code == 404, response.content
    assert response.json()["error"]["code"] == "not_found"
    assert _snapshot(world) == before


def test_uploading_into_another_users_video_stores_nothing(
    world: World, intruder: APIClient, media_storage: Path
) -> None:
    before = _snapshot(world)
    files_before = sorted(media_storage.rglob("*"))
    response = intruder.generic(
        "PUT", f"/api/videos/{world.video.pk}/upload", world.clip.read_bytes(), content_type="video/mp4"
    )
    assert response.status_code == 404
    assert _snapshot(world) == before
    assert sorted(media_storage.rglob("*")) == files_before


def test_private_videos_stay_out_of_every_list(world: World, intruder: APIClient) -> None:
    lists = [
        intruder.get(f"/api/users/{world.owner.pk}/videos"),
        intruder.get("/api/videos", {"limit": 100}),
        intruder.get("/api/search", {"q": world.video.title}),
        world.api_client("anonymous").get(f"/api/users/{world.owner.pk}/videos"),
    ]
    for response in lists:
        assert response.status_code == 200
        assert world.video.pk not in {item["id"] for item in response.json()["data"]}
    # ... while the owner does see it on their own list.
    own = world.api_client("owner").get(f"/api/users/{world.owner.pk}/videos").json()["data"]
    assert world.video.pk in {item["id"] for item in own}


def test_the_watch_page_of_another_users_private_video_is_404(world: World) -> None:
    assert world.session_client("user").get(f"/watch/{world.video.pk}").status_code == 404
    assert world.session_client("owner").get(f"/watch/{world.video.pk}").status_code == 200


def test_another_users_notification_cannot_be_read_or_marked(world: World, intruder: APIClient) -> None:
    response = intruder.post(f"/api/notifications/{world.notification.pk}/read")
    assert response.status_code == 404
    assert intruder.post("/api/notifications/read-all").json() == {"updated": 0}
    listed = intruder.get("/api/notifications").json()["data"]
    assert world.notification.pk not in {item["id"] for item in listed}
    world.notification.refresh_from_db()
    assert world.notification.read_at is None


def test_another_users_subscription_cannot_be_seen_or_cancelled(world: World, intruder: APIClient) -> None:
    before = _snapshot(world)
    assert intruder.get("/api/subscriptions/me").status_code == 404
    # There is no id to pass: one that is sent anyway is refused, not used.
    response = intruder.post(
        "/api/subscriptions/me/cancel", {"subscription_id": world.subscription.pk}, format="json"
    )
    assert response.status_code == 400
    assert _snapshot(world) == before


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PATCH", "/api/auth/me", {"is_staff": True}),
        ("PATCH", "/api/auth/me", {"is_superuser": True, "display_name": "x"}),
        ("PATCH", "/api/auth/me", {"id": "usr_someone_else"}),
        ("POST", "/api/videos", {"title": "Mine?", "owner": "{owner}"}),
        ("POST", "/api/videos", {"title": "Mine?", "owner_id": "{owner}"}),
        ("PATCH", "/api/videos/{own_video}", {"owner": "{owner}"}),
        ("POST", "/api/videos/{own_video}/upload/complete", {"video_id": "{video}"}),
    ],
)
def test_mass_assignment_is_refused(world: World, method: str, path: str, body: dict[str, Any]) -> None:
    client = world.api_client("user")
    own_video = client.post("/api/videos", {"title": "The user's own"}, format="json").json()["id"]
    values = {"owner": world.owner.pk, "video": world.video.pk, "own_video": own_video}
    filled = {key: value.format(**values) if isinstance(value, str) else value for key, value in body.items()}
    videos_before = Video.objects.count()
    response = client.generic(
        method, path.format(**values), json.dumps(filled), content_type="application/json"
    )
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "validation_error"
    refreshed = User.objects.get(pk=world.user.pk)
    assert not refreshed.is_staff and not refreshed.is_superuser
    assert Video.objects.count() == videos_before
    assert Video.objects.get(pk=own_video).owner_id == world.user.pk
    assert not Video.objects.filter(owner=world.owner).exclude(pk=world.video.pk).exists()


def test_registration_cannot_make_staff(db: Any, fast_passwords: None) -> None:
    response = APIClient().post(
        "/api/auth/register",
        {
            "username": "sneaky",
            "email": "sneaky@example.com",
            "password": "Sneaky-pass-123",
            "is_staff": True,
        },
        format="json",
    )
    assert response.status_code == 400
    assert not User.objects.filter(username="sneaky").exists()
