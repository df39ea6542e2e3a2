"""API-wide throttling: per anonymous address and per user, counted in Redis for every process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.test import Client

from tests.support.processes import ROOT, base_env
from videoplatform.api.throttling import parse_rate

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("rate", "per_minute"), [("off", None), ("", None), ("5/min", 5), ("2/sec", 120), ("120/hour", 2)]
)
def test_parse_rate(rate, per_minute):
    assert parse_rate(rate) == per_minute


def test_anonymous_clients_are_throttled_per_address(settings):
    settings.API_THROTTLE_ANON_RATE = "3/min"
    client = Client()
    assert [client.get("/api/videos").status_code for _ in range(3)] == [200, 200, 200]
    refused = client.get("/api/videos")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "throttled"
    assert 1 <= int(refused["Retry-After"]) <= 60
    # Another address has its own budget.
    assert client.get("/api/videos", REMOTE_ADDR="10.0.0.9").status_code == 200


def test_users_are_throttled_per_account(settings, user_client):
    settings.API_THROTTLE_USER_RATE = "2/min"
    assert user_client.get("/api/auth/me").status_code == 200
    assert user_client.get("/api/videos").status_code == 200
    assert user_client.get("/api/videos").status_code == 429


def test_the_count_is_shared_with_other_processes(settings):
    settings.API_THROTTLE_ANON_RATE = "4/min"
    script = (
        "import django; django.setup()\n"
        "from django.test import Client\n"
        "c = Client()\n"
        "print(','.join(str(c.get('/api/videos', REMOTE_ADDR='10.9.9.9').status_code) for _ in range(3)))\n"
    )
    env = base_env(
        DJANGO_SETTINGS_MODULE="settings.test",
        DATABASE_URL=os.environ["DATABASE_URL"],
        REDIS_URL=os.environ["REDIS_URL"],
        API_THROTTLE_ANON_RATE="4/min",
        ALLOWED_HOSTS="testserver",
    )
    other = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert other.returncode == 0, other.stderr
    # The other process's requests may fail on its own (unmigrated) database; they still count.
    assert len(other.stdout.strip().split(",")) == 3
    client = Client()
    assert client.get("/api/videos", REMOTE_ADDR="10.9.9.9").status_code == 200
    assert client.get("/api/videos", REMOTE_ADDR="10.9.9.9").status_code == 429
