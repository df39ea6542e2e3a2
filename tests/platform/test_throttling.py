"""API-wide throttling: per anonymous address and per user, counted in Redis for every process."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from django.core.cache import caches
from django.test import Client

from tests.cache.conftest import wait_for
from tests.support.processes import ROOT, base_env
from videoplatform.api.throttling import WINDOW_SECONDS, parse_rate

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


def test_counts_reach_redis_within_the_sync_interval(settings):
    """After a client's first request, this process sends its counts in batches: another process
    (which reads Redis) sees them within the interval."""
    settings.API_THROTTLE_SYNC_INTERVAL = 0.05
    settings.API_THROTTLE_ANON_RATE = "100/min"
    client = Client()
    statuses = [client.get("/api/videos", REMOTE_ADDR="10.7.7.7").status_code for _ in range(5)]
    assert statuses == [200] * 5
    key = f"throttle:api:ip:10.7.7.7:{int(time.time() // WINDOW_SECONDS)}"
    assert wait_for(lambda: caches["default"].get(key) == 5, timeout=2.0)


def test_with_no_sync_interval_every_request_is_counted_in_redis_at_once(settings):
    settings.API_THROTTLE_SYNC_INTERVAL = 0
    settings.API_THROTTLE_ANON_RATE = "100/min"
    client = Client()
    key = f"throttle:api:ip:10.7.7.8:{int(time.time() // WINDOW_SECONDS)}"
    for expected in (1, 2, 3):
        assert client.get("/api/videos", REMOTE_ADDR="10.7.7.8").status_code == 200
        assert caches["default"].get(key) == expected


def test_a_limit_reached_in_another_process_is_seen_here_within_the_interval(settings):
    """Another process's counts, sent in its batches, close the window here too."""
    settings.API_THROTTLE_SYNC_INTERVAL = 0.05
    settings.API_THROTTLE_ANON_RATE = "10/min"
    client = Client()
    assert client.get("/api/videos", REMOTE_ADDR="10.7.7.9").status_code == 200  # known here: 1
    key = f"throttle:api:ip:10.7.7.9:{int(time.time() // WINDOW_SECONDS)}"
    caches["default"].incr(key, 9)  # what other processes sent meanwhile: 10 in all
    assert wait_for(lambda: client.get("/api/videos", REMOTE_ADDR="10.7.7.9").status_code == 429, timeout=2.0)
