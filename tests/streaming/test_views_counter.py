"""Plays: a Redis counter deduplicated per viewer per video, flushed to view_count in batches."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from streaming import plays, services
from streaming.models import WatchEvent
from streaming.tasks import flush_view_counts
from tests.conftest import login_client
from tests.factories import UserFactory, VideoFactory
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
    user_client.get(f"/api/videos/{video.pk}/stream?bandwidth=600000")
    user_client.get(f"/api/videos/{video.pk}/stream")
    events = list(WatchEvent.objects.filter(user_id=user.pk))
    assert len(events) == 1
    assert events[0].video_id == video.pk and events[0].rendition_height == 360


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
