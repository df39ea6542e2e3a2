"""Concurrent streams per plan: leases in Redis, taken by the stream endpoint, renewed by
heartbeat beacons, freed by stop beacons or expiry, and atomic across processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings

from streaming import sessions
from tests.conftest import login_client
from tests.factories import PlanFactory, SubscriptionFactory, UserFactory
from tests.support.processes import ROOT

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not django_settings.REDIS_URL, reason="stream leases live in Redis"),
]


@pytest.fixture(autouse=True)
def _clean_leases() -> Iterator[None]:
    client = redis.Redis.from_url(django_settings.STREAM_LEASE_REDIS_URL)

    def clean() -> None:
        for key in client.scan_iter(f"{sessions.KEY_PREFIX}*"):
            client.delete(key)

    clean()
    yield
    clean()


def _subscriber(streams: int) -> tuple[Any, Any]:
    user = UserFactory()
    SubscriptionFactory(user=user, plan=PlanFactory(concurrent_streams=streams))
    return user, login_client(user)


def _stream(client: Any, video: Any, view_id: str | None = None, **extra: Any) -> Any:
    query = f"?view_id={view_id}" if view_id else ""
    return client.get(f"/api/videos/{video.pk}/stream{query}", **extra)


def _beacon(client: Any, video: Any, view_id: str, *events: dict[str, Any]) -> Any:
    body = {"view_id": view_id, "video_id": video.pk, "events": list(events)}
    return client.post("/api/playback/events", body, format="json")


def _assert_limited(response: Any, limit: int) -> None:
    assert response.status_code == 403, response.content
    error = response.json()["error"]
    assert error["code"] == "concurrent_stream_limit"
    assert f"allows {limit} stream" in error["message"]


def test_a_viewer_at_the_plan_limit_gets_concurrent_stream_limit(ready_video: Any) -> None:
    video = ready_video()
    user, client = _subscriber(2)
    first, second, third = (str(uuid.uuid4()) for _ in range(3))

    assert _stream(client, video, first).status_code == 200
    assert _stream(client, video, second).status_code == 200
    _assert_limited(_stream(client, video, third), 2)
    # The playbacks already running may ask again (a reload of the URLs): same lease.
    assert _stream(client, video, first).status_code == 200
    assert sessions.stream_leases_live(user_id=user.pk) == 2
    # Another subscriber is not affected.
    _, other = _subscriber(1)
    assert _stream(other, video, third).status_code == 200


def test_without_a_view_id_each_device_holds_one_lease(ready_video: Any) -> None:
    video = ready_video()
    _, client = _subscriber(1)

    assert _stream(client, video, HTTP_USER_AGENT="TV").status_code == 200
    assert _stream(client, video, HTTP_USER_AGENT="TV").status_code == 200  # the same device again
    _assert_limited(_stream(client, video, HTTP_USER_AGENT="Phone"), 1)


def test_a_stop_beacon_frees_the_slot_at_once(ready_video: Any) -> None:
    video = ready_video()
    _, client = _subscriber(1)
    tv, phone = str(uuid.uuid4()), str(uuid.uuid4())
    assert _stream(client, video, tv).status_code == 200
    _assert_limited(_stream(client, video, phone), 1)

    assert (
        _beacon(client, video, tv, {"type": "stop", "position_s": 12.5, "watched_ms": 12000}).status_code
        == 202
    )

    assert _stream(client, video, phone).status_code == 200


def test_an_abandoned_playback_expires_and_heartbeats_keep_one_alive(ready_video: Any, settings: Any) -> None:
    settings.STREAM_LEASE_TTL = 3
    video = ready_video()
    _, client = _subscriber(2)
    kept, abandoned, newcomer = (str(uuid.uuid4()) for _ in range(3))
    started = time.monotonic()
    assert _stream(client, video, kept).status_code == 200
    assert _stream(client, video, abandoned).status_code == 200

    time.sleep(1.5)
    heartbeat = {"type": "heartbeat", "position_s": 1.5, "watched_ms": 1500}
    assert _beacon(client, video, kept, heartbeat).status_code == 202
    _assert_limited(_stream(client, video, newcomer), 2)
    time.sleep(max(0.0, 3.3 - (time.monotonic() - started)))

    # The abandoned playback's lease ran out; the kept one was renewed, so one slot is free.
    assert _stream(client, video, newcomer).status_code == 200
    _assert_limited(_stream(client, video, abandoned), 2)


def test_a_heartbeat_does_not_bring_back_an_expired_lease(ready_video: Any, settings: Any) -> None:
    settings.STREAM_LEASE_TTL = 1
    video = ready_video()
    user, client = _subscriber(1)
    old = str(uuid.uuid4())
    assert _stream(client, video, old).status_code == 200
    time.sleep(1.2)

    assert (
        _beacon(client, video, old, {"type": "heartbeat", "position_s": 1, "watched_ms": 1000}).status_code
        == 202
    )

    assert sessions.stream_leases_live(user_id=user.pk) == 0


def test_nobody_else_can_free_a_viewers_lease(ready_video: Any, other_client: Any, api_client: Any) -> None:
    video = ready_video()
    _, client = _subscriber(1)
    lease = str(uuid.uuid4())
    assert _stream(client, video, lease).status_code == 200

    assert _beacon(other_client, video, lease, {"type": "stop"}).status_code == 202
    assert _beacon(api_client, video, lease, {"type": "stop"}).status_code == 202

    _assert_limited(_stream(client, video, str(uuid.uuid4())), 1)


def test_anonymous_viewers_hold_no_leases(api_client: Any, ready_video: Any) -> None:
    video = ready_video()
    for _ in range(4):
        assert _stream(api_client, video, str(uuid.uuid4())).status_code == 200


@pytest.mark.parametrize("value", ["nope", "1234", "3f0c2a4e-8d5b-4c1e-9a57"])
def test_a_bad_view_id_is_a_400_and_takes_nothing(ready_video: Any, value: str) -> None:
    video = ready_video()
    user, client = _subscriber(1)

    response = client.get(f"/api/videos/{video.pk}/stream?view_id={value}")

    assert response.status_code == 400
    assert response.json()["error"]["fields"]["view_id"]
    assert sessions.stream_leases_live(user_id=user.pk) == 0


def test_a_video_not_ready_takes_no_lease(ready_video: Any) -> None:
    from streaming.models import MediaFile

    video = ready_video()
    MediaFile.objects.filter(video=video).update(status=MediaFile.Status.PROCESSING)
    user, client = _subscriber(1)

    assert _stream(client, video, str(uuid.uuid4())).status_code == 409
    assert sessions.stream_leases_live(user_id=user.pk) == 0


RACE = """
import sys, time
import django
django.setup()
from streaming import sessions

class Viewer:
    is_authenticated = True
    pk = sys.argv[1]

start = float(sys.argv[3])
while time.time() < start:
    pass
try:
    sessions.stream_lease_acquire(user=Viewer(), lease=sys.argv[2], limit=1)
    print("won")
except sessions.ConcurrentStreamLimit:
    print("lost")
"""


@pytest.mark.slow
def test_devices_racing_for_the_last_slot_in_separate_processes_one_wins() -> None:
    user_id = f"usr_race{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "settings.test",
        "REDIS_URL": django_settings.STREAM_LEASE_REDIS_URL,
        "STREAM_LEASE_REDIS_URL": django_settings.STREAM_LEASE_REDIS_URL,
    }
    for attempt in range(3):
        start = time.time() + 4  # every process set up and spinning before the start
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", RACE, f"{user_id}-{attempt}", str(uuid.uuid4()), str(start)],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        results = [process.communicate(timeout=60)[0].strip() for process in processes]
        assert sorted(results) == ["lost", "lost", "lost", "won"], results
        assert sessions.stream_leases_live(user_id=f"{user_id}-{attempt}") == 1
