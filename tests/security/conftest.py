"""Fixtures of the security tests: a cast of users (anonymous, user, owner, staff), the owner's
private objects, real bearer tokens, and gunicorn servers on the test database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from accounts import notifications, services
from accounts.models import Notification, User
from streaming.live import services as live_services
from streaming.live.models import LiveStream
from subscriptions.models import Plan, Subscription
from tests.factories import SubscriptionFactory, UserFactory
from tests.streaming.media import make_clip
from tests.support.processes import base_env
from videos import intake as video_intake
from videos.models import Video
from webhooks import services as webhook_services
from webhooks.models import Delivery, Endpoint

ROLES = ("anonymous", "user", "owner", "staff")


@dataclass
class World:
    """Who is who, and the owner's private things that only the owner (and staff) may reach."""

    owner: User
    user: User
    staff: User
    video: Video
    notification: Notification
    subscription: Subscription
    plans: dict[str, Plan]
    clip: Path
    webhook: Endpoint
    delivery: Delivery
    live: LiveStream | None = None  # made on first use (live routes): other tests count the videos

    def live_stream(self) -> LiveStream:
        """The owner's private live stream."""
        if self.live is None:
            self.live, _key = live_services.live_stream_create(
                owner=self.owner, title="Owner's private live", privacy=Video.Privacy.PRIVATE
            )
        return self.live

    def account(self, role: str) -> User | None:
        return None if role == "anonymous" else getattr(self, role)

    def api_client(self, role: str) -> APIClient:
        """A client holding a real bearer token of the role (none for anonymous)."""
        client = APIClient()
        account = self.account(role)
        if account is not None:
            token = services.token_issue(user=account).token
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return client

    def session_client(self, role: str) -> APIClient:
        """A browser-like client with a session (for the pages outside the API)."""
        client = APIClient()
        account = self.account(role)
        if account is not None:
            client.force_login(account)
        return client


@pytest.fixture(scope="session")
def small_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("security-clips"), width=320, height=240, duration=1.0, fps=8)


@pytest.fixture
def media_storage(settings: Any, tmp_path: Path) -> Path:
    """Stored files go to a folder of this test's own, which the test can inspect."""
    root = tmp_path / "media"
    root.mkdir()
    settings.MEDIA_ROOT = root
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root), "base_url": "/media/"},
        },
    }
    return root


@pytest.fixture
def fast_passwords(settings: Any) -> None:
    # The cast is rebuilt for every cell of the matrix; Argon2 is what the accounts tests measure.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world(db: Any, fast_passwords: None, media_storage: Path, small_clip: Path) -> World:
    owner = UserFactory()
    plans = {plan.code: plan for plan in Plan.objects.all()}
    video, _target = video_intake.video_create_with_upload_target(
        owner=owner, title="Owner's private video", privacy=Video.Privacy.PRIVATE
    )
    notification = notifications.notification_create(
        user_id=owner.pk,
        kind=Notification.Kind.VIDEO_READY,
        title="Your video is ready",
        event_key=f"security:{uuid.uuid4().hex}",
    )
    assert notification is not None
    webhook = webhook_services.endpoint_create(owner=owner, url="https://hooks.example.com/in", events=["*"])
    return World(
        owner=owner,
        user=UserFactory(),
        staff=UserFactory(is_staff=True, is_superuser=True),
        video=video,
        notification=notification,
        subscription=SubscriptionFactory(user=owner, plan=plans["standard"]),
        plans=plans,
        clip=small_clip,
        webhook=webhook,
        delivery=Delivery.objects.get(endpoint=webhook),  # its ping
    )


def live_database_url() -> str:
    """The URL of the test database, for servers started by a test (they see committed rows)."""
    settings_dict = connection.settings_dict
    user = settings_dict["USER"] or "postgres"
    password = f":{settings_dict['PASSWORD']}" if settings_dict["PASSWORD"] else ""
    host = settings_dict["HOST"] or "127.0.0.1"
    port = settings_dict["PORT"] or "5432"
    return f"postgres://{user}{password}@{host}:{port}/{settings_dict['NAME']}"


@pytest.fixture
def server_env(tmp_path: Path) -> Callable[..., dict[str, str]]:
    """The environment of a gunicorn serving the test database and the tests' Redis."""

    def make(**overrides: str) -> dict[str, str]:
        tmp = tmp_path / "server-tmp"
        tmp.mkdir(exist_ok=True)
        media = tmp_path / "server-media"
        media.mkdir(exist_ok=True)
        env = {
            "DJANGO_SETTINGS_MODULE": "settings.test",
            "DATABASE_URL": live_database_url(),
            "REDIS_URL": os.environ.get("REDIS_URL", ""),
            "VAR_DIR": str(tmp_path / "server-var"),
            "MEDIA_ROOT": str(media),
            "TMPDIR": str(tmp),
            "CACHE_TIERS_ENABLED": "0",
        }
        env.update(overrides)
        return base_env(**env)

    return make
