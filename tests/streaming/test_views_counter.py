"""Plays: a Redis counter deduplicated per viewer per video, flushed to view_count in batches."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from redis.connection import AbstractConnection

from streaming import plays, services, sessions
from streaming.models import WatchEvent
from streaming.tasks import flush_view_counts
from tests.conftest import login_client
from tests.factories import PlanFactory, SubscriptionFactory, UserFactory, VideoFactory
from videos.models import Video

pytestmark = pytest.mark.django_db


def test_a_play_counts_once_per_viewer_within_the_window(ready_video, counter_redis, user, user_client):
    video = ready_video()
    for _ in range(3):
        assert user_client.get(f"/api/videos/{video.pk}/stream").status_code == 200
    other = login_client(UserFactory())
    other.get(f"/api/videos/{video.pk}/stream")
    # Nothing reaches the database until the flush.
    assert Video.objects.get(pk=video.pk).view_count == 0
    assert flush_view_counts() == 2
    assert Video.objects.get(pk=video.pk).view_count == 2
    # The flushed counts are gone: a second flush adds nothing.
    assert flush_view_counts() == 0
    assert Video.objects.get(pk=video.pk).view_count == 2


def test_anonymous_viewers_are_told_apart_by_address_and_agent(api_client, ready_video, counter_redis):
    video = ready_video()
    api_client.get(f"/api/videos/{video.pk}/stream", HTTP_USER_AGENT="phone")
    api_client.get(f"/api/videos/{video.pk}/stream", HTTP_USER_AGENT="phone")
    api_client.get(f"/api/videos/{video.pk}/stream", HTTP_USER_AGENT="laptop")
    flush_view_counts()
    assert Video.objects.get(pk=video.pk).view_count == 2


def test_the_dedup_window_expires(ready_video, counter_redis, user, user_client, settings):
    video = ready_video()
    user_client.get(f"/api/videos/{video.pk}/stream")
    # The window is the key's TTL; once it lapses the same viewer counts again.
    counter_redis.delete(f"{plays.SEEN_PREFIX}{video.pk}:u:{user.pk}")
    user_client.get(f"/api/videos/{video.pk}/stream")
    flush_view_counts()
    assert Video.objects.get(pk=video.pk).view_count == 2
    ttl = counter_redis.ttl(f"{plays.SEEN_PREFIX}{video.pk}:u:{user.pk}")
    assert 0 < ttl <= settings.VIEW_DEDUP_WINDOW


def test_each_counted_play_is_written_to_the_watch_history(ready_video, counter_redis, user, user_client):
    video = ready_video()
    before = timezone.now()
    user_client.get(f"/api/videos/{video.pk}/stream?bandwidth=600000")
    user_client.get(f"/api/videos/{video.pk}/stream")
    # The play waits in Redis with its count: the request wrote no row.
    assert not WatchEvent.objects.filter(user_id=user.pk).exists()
    assert counter_redis.llen(plays.HISTORY_KEY) == 1
    assert flush_view_counts() == 1
    events = list(WatchEvent.objects.filter(user_id=user.pk))
    assert len(events) == 1
    assert events[0].video_id == video.pk and events[0].rendition_height == 360
    assert before - timedelta(seconds=1) <= events[0].started_at <= timezone.now()
    # Written once: the next flush finds nothing.
    assert counter_redis.llen(plays.HISTORY_KEY) == 0
    flush_view_counts()
    assert WatchEvent.objects.filter(user_id=user.pk).count() == 1


def test_a_signed_in_play_is_one_redis_call_and_no_sql_write(
    ready_video, counter_redis, user, user_client, monkeypatch
):
    video = ready_video()
    path = f"/api/videos/{video.pk}/stream"
    assert user_client.get(path).status_code == 200  # caches filled, the lease taken
    counter_redis.delete(f"{plays.SEEN_PREFIX}{video.pk}:u:{user.pk}")
    sent: list[bytes] = []
    send = AbstractConnection.send_packed_command

    def recorded(self: Any, command: Any, check_health: bool = True) -> None:
        sent.append(command if isinstance(command, bytes) else b"".join(command))
        send(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", recorded)
    with CaptureQueriesContext(connection) as captured:
        assert user_client.get(path).status_code == 200
    writes = [command for command in sent if b"vp:plays:" in command or b"vp:streams:" in command]
    assert len(writes) == 1, writes  # the lease, the count and the history together
    assert b"vp:streams:" in writes[0] and plays.HISTORY_KEY.encode() in writes[0]
    assert not [q for q in captured.captured_queries if not q["sql"].startswith("SELECT")]
    assert flush_view_counts() == 2  # the warm-up's play and this one
    assert WatchEvent.objects.filter(user_id=user.pk, video_id=video.pk).count() == 2


def test_leases_on_another_server_are_taken_in_their_own_call(ready_video, counter_redis, settings):
    # Another URL for the leases (here the same server under another name): the lease is its own
    # call, and the limit holds as before.
    settings.STREAM_LEASE_REDIS_URL = settings.VIEW_COUNTER_REDIS_URL + "?client_name=leases"
    user = UserFactory()
    SubscriptionFactory(user=user, plan=PlanFactory(concurrent_streams=2))
    client = login_client(user)
    video = ready_video()
    for _ in range(2):
        assert client.get(f"/api/videos/{video.pk}/stream?view_id={uuid.uuid4()}").status_code == 200
    refused = client.get(f"/api/videos/{video.pk}/stream?view_id={uuid.uuid4()}")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "concurrent_stream_limit"
    assert counter_redis.zcard(sessions.lease_key(user.pk)) == 2
    assert flush_view_counts() == 1  # one viewer, one video: counted once


def test_history_left_by_a_crashed_flush_is_written_next_time(counter_redis, user):
    at = timezone.now()
    counter_redis.rpush(
        f"{plays.HISTORY_FLUSHING_PREFIX}crashed",
        plays.history_entry(user_id=user.pk, video_id="vid_left", rendition_height=720, at=at),
        b"not json",
        plays.history_entry(user_id=user.pk, video_id="vid_left2", rendition_height=None, at=at),
    )
    assert services.watch_history_flush(batch_size=2) == 2  # the malformed entry is skipped
    rows = sorted(WatchEvent.objects.filter(user_id=user.pk).values_list("video_id", "rendition_height"))
    assert rows == [("vid_left", 720), ("vid_left2", None)]
    assert not list(counter_redis.scan_iter(f"{plays.HISTORY_FLUSHING_PREFIX}*"))


def test_rejected_requests_count_nothing(api_client, ready_video, counter_redis):
    video = ready_video(is_premium=True)
    assert api_client.get(f"/api/videos/{video.pk}/stream").status_code == 403
    assert counter_redis.hlen(plays.PENDING_KEY) == 0


def test_flush_writes_in_batches(counter_redis):
    videos = VideoFactory.create_batch(5)
    for index, video in enumerate(videos):
        for viewer in range(index + 1):
            plays.record(counter_redis, video_id=video.pk, viewer_key=f"v{viewer}", window=60)
    with CaptureQueriesContext(connection) as captured:
        assert services.video_views_flush(batch_size=2) == 15
    updates = [q["sql"] for q in captured.captured_queries if q["sql"].startswith("UPDATE")]
    assert len(updates) == 3  # 5 videos in batches of 2: never one write per view
    assert [Video.objects.get(pk=v.pk).view_count for v in videos] == [1, 2, 3, 4, 5]


def test_counts_left_by_a_crashed_flush_are_flushed_next_time(counter_redis):
    video = VideoFactory(view_count=10)
    counter_redis.hset(f"{plays.FLUSHING_PREFIX}crashed", video.pk, 4)
    plays.record(counter_redis, video_id=video.pk, viewer_key="someone", window=60)
    assert services.video_views_flush() == 5
    assert Video.objects.get(pk=video.pk).view_count == 15
    assert not list(counter_redis.scan_iter(f"{plays.FLUSHING_PREFIX}*"))


def test_counts_for_deleted_videos_are_dropped(counter_redis):
    video = VideoFactory()
    plays.record(counter_redis, video_id="vid_deleted", viewer_key="x", window=60)
    plays.record(counter_redis, video_id=video.pk, viewer_key="x", window=60)
    services.video_views_flush()
    assert Video.objects.get(pk=video.pk).view_count == 1
    assert counter_redis.hlen(plays.PENDING_KEY) == 0


def test_beat_schedules_the_flush_on_the_default_queue():
    from videoplatform.celery import app

    entry = app.conf.beat_schedule["streaming-flush-view-counts"]
    assert entry["task"] == flush_view_counts.name
    assert entry["options"]["queue"] == "default"
    assert app.amqp.router.route({}, flush_view_counts.name)["queue"].name == "default"
