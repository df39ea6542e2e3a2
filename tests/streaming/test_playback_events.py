"""POST /api/playback/events: QoE beacons validated, rate-limited and counted in /metrics."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.test import Client
from prometheus_client import REGISTRY

from streaming.qoe import device_class
from tests.factories import VideoFactory
from videos.models import Video

pytestmark = pytest.mark.django_db

URL = "/api/playback/events"
DESKTOP = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120 Safari/537.36"
PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148"


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _post(client: Any, video_id: str, *events: dict[str, Any], agent: str = DESKTOP, **extra: Any) -> Any:
    body = {"view_id": str(uuid.uuid4()), "video_id": video_id, "events": list(events)}
    return client.post(URL, body, format="json", HTTP_USER_AGENT=agent, **extra)


def _assert_400(response: Any, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    if field:
        assert field in json.dumps(error.get("fields", {})), error
    return error


def test_a_batch_is_accepted_and_lands_in_the_metrics(api_client: Any) -> None:
    video = VideoFactory(status=Video.Status.READY)
    startups = _sample("video_startup_seconds_count", rendition="720p", device="mobile")
    fast = _sample("video_startup_seconds_bucket", rendition="720p", device="mobile", le="1.0")
    stalled = _sample("video_rebuffer_seconds_total", rendition="720p", device="mobile")
    watched = _sample("video_watched_seconds_total", rendition="720p", device="mobile")
    ups = _sample("video_rendition_switches_total", direction="up", device="mobile")
    frag = _sample("video_playback_errors_total", code="fragLoadError", fatal="false", device="mobile")
    other = _sample("video_playback_errors_total", code="other", fatal="true", device="mobile")
    accepted = _sample("playback_beacons_total", result="accepted")

    response = _post(
        api_client,
        video.pk,
        {"type": "startup", "startup_ms": 840, "rendition": "720p"},
        {"type": "rendition_switch", "from": "480p", "to": "720p"},
        {"type": "rebuffer", "duration_ms": 1500, "rendition": "720p"},
        {"type": "error", "code": "fragLoadError", "fatal": False},
        {"type": "error", "code": "<script>", "fatal": True},
        {"type": "heartbeat", "position_s": 20.0, "watched_ms": 19500, "rendition": "720p"},
        agent=PHONE,
    )

    assert response.status_code == 202, response.content
    assert _sample("video_startup_seconds_count", rendition="720p", device="mobile") == startups + 1
    assert _sample("video_startup_seconds_bucket", rendition="720p", device="mobile", le="1.0") == fast + 1
    assert _sample("video_rebuffer_seconds_total", rendition="720p", device="mobile") == stalled + 1.5
    assert _sample("video_watched_seconds_total", rendition="720p", device="mobile") == watched + 19.5
    assert _sample("video_rendition_switches_total", direction="up", device="mobile") == ups + 1
    assert (
        _sample("video_playback_errors_total", code="fragLoadError", fatal="false", device="mobile")
        == frag + 1
    )
    # A code outside hls.js's list is counted, but never becomes a label of its own.
    assert _sample("video_playback_errors_total", code="other", fatal="true", device="mobile") == other + 1
    assert _sample("playback_beacons_total", result="accepted") == accepted + 1


def test_the_metrics_carry_no_video_or_viewer(api_client: Any) -> None:
    video = VideoFactory(status=Video.Status.READY)
    _post(api_client, video.pk, {"type": "startup", "startup_ms": 500, "rendition": "9999p"})

    body = Client().get("/metrics").content.decode()

    qoe_lines = [line for line in body.splitlines() if line.startswith("video_")]
    assert qoe_lines and not any(video.pk in line for line in qoe_lines)
    assert 'video_startup_seconds_count{device="desktop",rendition="other"}' in body


@pytest.mark.parametrize(
    ("events", "field"),
    [
        ([{"type": "teleport"}], "type"),
        ([{"type": "startup"}], "startup_ms"),
        ([{"type": "startup", "startup_ms": -5}], "startup_ms"),
        ([{"type": "startup", "startup_ms": "840"}], None),
        ([{"type": "rebuffer", "duration_ms": 10, "code": "x"}], "code"),
        ([{"type": "error", "code": 5, "fatal": True}], "code"),
        ([{"type": "error", "code": "x", "fatal": "maybe"}], "fatal"),
        ([{"type": "heartbeat", "position_s": 3}], "watched_ms"),
        ([{"type": "startup", "startup_ms": 100, "user_id": "usr_x"}], "user_id"),
        ([], "events"),
        ([{"type": "heartbeat", "position_s": 1, "watched_ms": 1}] * 51, "events"),
    ],
)
def test_malformed_batches_are_400_and_counted(api_client: Any, events: list[Any], field: str | None) -> None:
    video = VideoFactory(status=Video.Status.READY)
    invalid = _sample("playback_beacons_total", result="invalid")
    startups = _sample("video_startup_seconds_count", rendition="other", device="desktop")

    _assert_400(_post(api_client, video.pk, *events), field)

    assert _sample("playback_beacons_total", result="invalid") == invalid + 1
    assert _sample("video_startup_seconds_count", rendition="other", device="desktop") == startups


def test_a_batch_needs_a_uuid_view_id_and_a_json_object(api_client: Any) -> None:
    video = VideoFactory(status=Video.Status.READY)
    body = {"view_id": "42", "video_id": video.pk, "events": [{"type": "stop"}]}
    _assert_400(api_client.post(URL, body, format="json"), "view_id")
    _assert_400(api_client.post(URL, [body], format="json"))
    malformed = api_client.post(URL, b"{not json", content_type="application/json")
    assert malformed.status_code == 400 and malformed.json()["error"]["code"]


def test_an_oversized_batch_is_a_400(api_client: Any) -> None:
    video = VideoFactory(status=Video.Status.READY)
    body = json.dumps(
        {"view_id": str(uuid.uuid4()), "video_id": video.pk, "events": [{"type": "stop"}], "pad": "x" * 20000}
    )
    error = _assert_400(api_client.post(URL, body, content_type="application/json"))
    assert "16384 bytes" in error["message"]


def test_a_video_the_viewer_may_not_see_is_a_404(api_client: Any, other_user: Any) -> None:
    private = VideoFactory(owner=other_user, privacy=Video.Privacy.PRIVATE, status=Video.Status.READY)

    response = _post(api_client, private.pk, {"type": "startup", "startup_ms": 10})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert _post(api_client, "vid_nosuchvideo", {"type": "stop"}).status_code == 404


def test_a_flood_from_one_address_is_throttled(api_client: Any, settings: Any) -> None:
    settings.PLAYBACK_BEACON_LIMIT = 3
    video = VideoFactory(status=Video.Status.READY)
    address = {"REMOTE_ADDR": f"198.51.100.{uuid.uuid4().int % 250 + 1}"}

    statuses = [_post(api_client, video.pk, {"type": "stop"}, **address).status_code for _ in range(5)]

    assert statuses == [202, 202, 202, 429, 429]
    assert _post(api_client, video.pk, {"type": "stop"}, REMOTE_ADDR="203.0.113.77").status_code == 202


def test_a_signed_in_session_may_send_beacons_without_a_csrf_header(user: Any) -> None:
    """navigator.sendBeacon cannot add X-CSRFToken: the endpoint must not ask for it."""
    video = VideoFactory(status=Video.Status.READY)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    body = {"view_id": str(uuid.uuid4()), "video_id": video.pk, "events": [{"type": "stop"}]}

    response = client.post(URL, json.dumps(body), content_type="application/json")

    assert response.status_code == 202, response.content


def test_a_beacon_writes_nothing_to_the_database(api_client: Any, django_assert_max_num_queries: Any) -> None:
    video = VideoFactory(status=Video.Status.READY)
    with django_assert_max_num_queries(1):  # at most the visibility check, a read
        response = _post(api_client, video.pk, {"type": "startup", "startup_ms": 900, "rendition": "480p"})
    assert response.status_code == 202


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        (DESKTOP, "desktop"),
        (PHONE, "mobile"),
        ("Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X)", "tablet"),
        ("Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 Safari/537.36", "tablet"),
        ("Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 Mobile Safari/537.36", "mobile"),
        ("Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/537.36", "tv"),
        ("curl/8.0", "other"),
    ],
)
def test_device_class(agent: str, expected: str) -> None:
    assert device_class(agent) == expected
