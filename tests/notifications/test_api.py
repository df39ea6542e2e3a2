"""The inbox API: a user's own notifications, newest first, with an unread filter; marking one
or all read. Another user's notification does not exist for them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from accounts import notifications
from accounts.models import Notification
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def make(user: Any, title: str, *, minutes_ago: int = 0, read: bool = False) -> Notification:
    return Notification.objects.create(
        user=user,
        kind=Notification.Kind.VIDEO_READY,
        title=title,
        data={"video_id": "vid_x"},
        event_key=f"test:{title}:{user.pk}",
        created_at=timezone.now() - timedelta(minutes=minutes_ago),
        read_at=timezone.now() if read else None,
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/notifications"),
        ("post", "/api/notifications/read-all"),
        ("post", "/api/notifications/ntf_x/read"),
    ],
)
def test_the_inbox_needs_a_signed_in_user(api_client: Any, method: str, path: str) -> None:
    response = getattr(api_client, method)(path)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_lists_only_my_notifications_newest_first_in_the_envelope(
    user: Any, other_user: Any, user_client: Any
) -> None:
    make(user, "older", minutes_ago=5)
    make(user, "newer", minutes_ago=1, read=True)
    make(other_user, "not mine")

    body = user_client.get("/api/notifications").json()
    assert [item["title"] for item in body["data"]] == ["newer", "older"]
    assert body["data"][0]["read"] is True and body["data"][1]["read"] is False
    assert body["data"][1]["data"] == {"video_id": "vid_x"}
    assert body["pagination"] == {"total": 2, "page": 1, "limit": 20, "total_pages": 1, "has_more": False}

    page = user_client.get("/api/notifications?limit=1&page=2").json()
    assert [item["title"] for item in page["data"]] == ["older"]


def test_filters_unread_and_read(user: Any, user_client: Any) -> None:
    make(user, "unread one")
    make(user, "read one", read=True)
    unread = user_client.get("/api/notifications?unread=true").json()
    assert [item["title"] for item in unread["data"]] == ["unread one"]
    assert unread["pagination"]["total"] == 1
    read = user_client.get("/api/notifications?unread=false").json()
    assert [item["title"] for item in read["data"]] == ["read one"]


@pytest.mark.parametrize("query", ["unread=yes", "unread=", "unread=1", "page=0", "limit=1000"])
def test_bad_filters_are_a_clear_400(user_client: Any, query: str) -> None:
    response = user_client.get(f"/api/notifications?{query}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


def test_marking_one_read_is_idempotent(user: Any, user_client: Any) -> None:
    notification = make(user, "hello")
    first = user_client.post(f"/api/notifications/{notification.pk}/read")
    assert first.status_code == 200
    assert first.json()["read"] is True
    second = user_client.post(f"/api/notifications/{notification.pk}/read")
    assert second.json()["read_at"] == first.json()["read_at"]
    assert user_client.get("/api/notifications?unread=true").json()["data"] == []


def test_another_users_notification_is_a_404_and_stays_unread(other_user: Any, user_client: Any) -> None:
    theirs = make(other_user, "private")
    for path in (f"/api/notifications/{theirs.pk}/read", "/api/notifications/ntf_doesnotexist/read"):
        response = user_client.post(path)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_read_all_marks_only_my_unread_notifications(user: Any, other_user: Any, user_client: Any) -> None:
    make(user, "a")
    make(user, "b")
    already = make(user, "c", read=True)
    theirs = make(other_user, "d")
    response = user_client.post("/api/notifications/read-all")
    assert response.status_code == 200
    assert response.json() == {"updated": 2}
    assert not Notification.objects.filter(user=user, read_at__isnull=True).exists()
    assert Notification.objects.get(pk=already.pk).read_at == already.read_at
    assert Notification.objects.get(pk=theirs.pk).read_at is None
    assert user_client.post("/api/notifications/read-all").json() == {"updated": 0}


def test_the_same_event_makes_one_notification() -> None:
    user = UserFactory()
    for _ in range(2):
        notifications.notification_create(
            user_id=user.pk, kind="video_ready", title="Ready", event_key="task:same-job"
        )
    assert Notification.objects.filter(user=user).count() == 1
    assert (
        notifications.notification_create(user_id="usr_gone", kind="video_ready", title="x", event_key="k")
        is None
    )


def test_the_schema_describes_the_inbox(api_client: Any) -> None:
    schema = api_client.get("/api/schema?format=json").json()
    operations = {
        operation["operationId"]
        for path in schema["paths"].values()
        for operation in path.values()
        if isinstance(operation, dict) and "operationId" in operation
    }
    assert {"notifications_list", "notifications_read", "notifications_read_all"} <= operations
