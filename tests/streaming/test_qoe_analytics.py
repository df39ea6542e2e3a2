"""Per-video QoE: beacons summed per video per day in Redis, rolled up by the beat job into daily
rows, read by the owner at GET /api/videos/{id}/analytics."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings

from streaming import qoe
from streaming.models import VideoQoeDaily
from streaming.tasks import rollup_qoe
from tests.factories import VideoFactory
from videos.models import Video

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not django_settings.REDIS_URL, reason="per-video QoE is summed in Redis"),
]

BEACONS = "/api/playback/events"


@pytest.fixture(autouse=True)
def _clean_qoe() -> Iterator[None]:
    client = redis.Redis.from_url(django_settings.PLAYBACK_QOE_REDIS_URL)

    def clean() -> None:
        for key in client.scan_iter("vp:qoe:*"):
            client.delete(key)

    clean()
    yield
    clean()


def _beacon(client: Any, video_id: str, *events: dict[str, Any], view_id: str | None = None) -> None:
    body = {"view_id": view_id or str(uuid.uuid4()), "video_id": video_id, "events": list(events)}
    response = client.post(BEACONS, body, format="json")
    assert response.status_code == 202, response.content


def _analytics(client: Any, video_id: str, **query: str) -> Any:
    return client.get(f"/api/videos/{video_id}/analytics", query)


def _rollup() -> int:
    """The beat job, run through Celery's task machinery in this process."""
    result = rollup_qoe.apply()
    assert result.successful(), result.traceback
    return int(result.get())


def test_the_owner_reads_views_startup_percentiles_rebuffer_ratio_and_errors(
    api_client: Any, user: Any, user_client: Any
) -> None:
    video = VideoFactory(owner=user, status=Video.Status.READY)
    startups = [400, 650, 700, 900, 1200, 1250, 1500, 1800, 2600, 5200]
    for startup in startups:
        _beacon(api_client, video.pk, {"type": "startup", "startup_ms": startup, "rendition": "480p"})
    stalled = str(uuid.uuid4())
    _beacon(
        api_client,
        video.pk,
        {"type": "startup", "startup_ms": 800, "rendition": "720p"},
        {"type": "rebuffer", "duration_ms": 2000, "rendition": "720p"},
        {"type": "error", "code": "fragLoadError", "fatal": False},
        {"type": "heartbeat", "position_s": 20.0, "watched_ms": 18000, "rendition": "720p"},
        view_id=stalled,
    )
    # The same view reporting its start-up again (a retried beacon) is still one view.
    _beacon(api_client, video.pk, {"type": "startup", "startup_ms": 800}, view_id=stalled)
    _beacon(api_client, video.pk, {"type": "error", "code": "manifestLoadError", "fatal": True})

    # Nothing reaches the owner before the roll-up.
    before = _analytics(user_client, video.pk)
    assert before.status_code == 200, before.content
    assert before.json()["totals"]["views"] == 0 and before.json()["days"] == []

    assert _rollup() == 1
    body = _analytics(user_client, video.pk).json()
    today = datetime.now(UTC).date().isoformat()
    assert [day["day"] for day in body["days"]] == [today]
    totals = body["totals"]
    assert totals["views"] == 11
    assert totals["startup_p50_ms"] == 1200  # the 6th of 11 start-ups, 1200 ms, in the (1100, 1200] bucket
    assert totals["startup_p95_ms"] == 5500  # the 11th, 5200 ms, in the (5000, 5500] bucket
    assert totals["rebuffer_ratio"] == pytest.approx(2000 / 20000)
    assert totals["rebuffers"] == 1
    assert (totals["errors"], totals["fatal_errors"]) == (1, 1)
    assert totals["watched_seconds"] == 18.0
    assert body["days"][0]["views"] == 11


def test_the_rollup_writes_totals_so_running_it_again_changes_nothing(api_client: Any, user: Any) -> None:
    video = VideoFactory(owner=user, status=Video.Status.READY)
    _beacon(api_client, video.pk, {"type": "startup", "startup_ms": 300})
    assert _rollup() == 1
    assert _rollup() == 0  # nothing changed since
    row = VideoQoeDaily.objects.get(video=video)
    assert (row.views, row.startup_p50_ms) == (1, 300)

    # A later beacon the same day updates the same row with the day's totals.
    _beacon(api_client, video.pk, {"type": "startup", "startup_ms": 1900})
    assert _rollup() == 1
    row.refresh_from_db()
    assert (row.views, row.startup_p95_ms) == (2, 1900)
    assert VideoQoeDaily.objects.filter(video=video).count() == 1


def test_totals_left_by_an_interrupted_rollup_are_written_next_time(api_client: Any, user: Any) -> None:
    video = VideoFactory(owner=user, status=Video.Status.READY)
    _beacon(api_client, video.pk, {"type": "startup", "startup_ms": 300})
    client = qoe.qoe_client()
    assert client is not None
    qoe.take_dirty(client)  # a roll-up took the set aside, then died before writing
    assert _rollup() == 1
    assert VideoQoeDaily.objects.get(video=video).views == 1


def test_days_are_kept_apart_and_the_range_selects_them(user: Any, user_client: Any) -> None:
    video = VideoFactory(owner=user, status=Video.Status.READY)
    today = datetime.now(UTC).date()
    for days_ago, startup in ((0, 500), (3, 1500), (40, 3000)):
        when = datetime.now(UTC) - timedelta(days=days_ago)
        events = [{"type": "startup", "startup_ms": startup}]
        assert qoe.record_video_events(video_id=video.pk, view_id=uuid.uuid4(), events=events, now=when)
    assert _rollup() == 3

    default = _analytics(user_client, video.pk).json()  # the last 28 days
    assert [day["day"] for day in default["days"]] == [
        (today - timedelta(days=3)).isoformat(),
        today.isoformat(),
    ]
    assert default["totals"]["views"] == 2
    assert default["totals"]["startup_p95_ms"] == 1500

    old = (today - timedelta(days=40)).isoformat()
    one_day = _analytics(user_client, video.pk, **{"from": old, "to": old}).json()
    assert [day["day"] for day in one_day["days"]] == [old]
    assert one_day["totals"]["startup_p50_ms"] == 3000


@pytest.mark.parametrize(
    "query",
    [
        {"from": "2026-12-10", "to": "2026-12-01"},  # backwards
        {"from": "2025-01-01", "to": "2026-12-01"},  # more than 366 days
        {"from": "yesterday"},
        {"to": "2026-13-01"},
        {"since": "2026-12-01"},  # not a parameter
    ],
)
def test_a_bad_range_is_a_400_with_the_error_shape(
    user: Any, user_client: Any, query: dict[str, str]
) -> None:
    video = VideoFactory(owner=user, status=Video.Status.READY)
    response = _analytics(user_client, video.pk, **query)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "validation_error"


def test_only_the_owner_and_staff_read_a_videos_analytics(
    api_client: Any, user: Any, other_client: Any, staff_client: Any
) -> None:
    public = VideoFactory(owner=user, status=Video.Status.READY, privacy=Video.Privacy.PUBLIC)
    private = VideoFactory(owner=user, status=Video.Status.READY, privacy=Video.Privacy.PRIVATE)
    assert _analytics(api_client, public.pk).status_code == 401
    # Another user may watch the public video but not read its analytics; the private one does
    # not exist for them.
    assert _analytics(other_client, public.pk).status_code == 403
    assert _analytics(other_client, private.pk).status_code == 404
    assert _analytics(staff_client, private.pk).status_code == 200


def test_a_deleted_videos_totals_are_dropped(api_client: Any, user: Any) -> None:
    video = VideoFactory(owner=user, status=Video.Status.READY)
    _beacon(api_client, video.pk, {"type": "startup", "startup_ms": 300})
    video.delete()
    assert _rollup() == 1  # read, and not written: the video is gone
    assert not VideoQoeDaily.objects.exists()


def test_beacons_without_playback_data_add_nothing(api_client: Any, user: Any) -> None:
    video = VideoFactory(owner=user, status=Video.Status.READY)
    _beacon(api_client, video.pk, {"type": "rendition_switch", "from": "360p", "to": "480p"})
    assert _rollup() == 0


@pytest.mark.parametrize(
    ("histogram", "quantile", "expected"),
    [
        ({}, 0.5, None),
        ({500: 3, 900: 1}, 0.5, 500),
        ({500: 3, 900: 1}, 0.95, 900),
        ({100: 19, 2000: 1}, 0.95, 100),
    ],
)
def test_percentile_reads_the_bucket_holding_the_rank(
    histogram: dict[int, int], quantile: float, expected: int | None
) -> None:
    assert qoe.percentile_ms(histogram, quantile) == expected


def test_beat_schedules_the_rollup_on_the_default_queue() -> None:
    from videoplatform.celery import app

    entry = app.conf.beat_schedule["streaming-qoe-rollup"]
    assert entry["task"] == rollup_qoe.name
    assert app.amqp.router.route({}, rollup_qoe.name)["queue"].name == "default"
