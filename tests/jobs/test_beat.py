"""The beat schedule: every entry names a real task on the right queue; a beat process sends
them; each scheduled job does its work; staff see each job's last run."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import AuthToken, EmailDelivery
from streaming import services as media_services
from streaming.models import MediaFile, WatchEvent
from subscriptions.models import Subscription
from tests.factories import SubscriptionFactory, UserFactory, VideoFactory
from tests.jobs.support import BROKER_URL, app_on_broker, celery_beat, celery_worker, flush_redis
from tests.support.processes import wait_until
from videoplatform.jobs.models import ScheduledRun, TaskFailure
from videoplatform.jobs.queues import queue_for
from videoplatform.jobs.recording import BEAT_HEADER
from videoplatform.jobs.schedule import scheduled_job, scheduled_jobs
from videos.models import RelatedVideos, Video
from videos.search import search_index_update

pytestmark = pytest.mark.django_db(transaction=True)


def test_every_scheduled_job_names_a_registered_task_on_its_queue() -> None:
    from videoplatform.celery import app

    app.loader.import_default_modules()
    schedule = app.conf.beat_schedule
    assert {job.name for job in scheduled_jobs()} == set(schedule)
    for job in scheduled_jobs():
        assert job.task in app.tasks, job.task
        assert schedule[job.name]["options"]["queue"] == queue_for(job.task)
        assert schedule[job.name]["options"]["headers"] == {BEAT_HEADER: job.name}
    everything = {job.task for job in scheduled_jobs()}
    assert {
        "streaming.plays.flush_view_counts",
        "videos.tasks.recommend_refresh",
        "subscriptions.tasks.expire_lapsed_subscriptions",
        "videoplatform.jobs.tasks.warm_cache",
        "videos.tasks.cleanup_abandoned_uploads",
        "accounts.tasks.purge_expired_tokens",
    } <= everything
    assert scheduled_job("recommendations-refresh").every == "hourly at minute 17"  # type: ignore[union-attr]
    assert scheduled_job("subscriptions-expire-lapsed").every == "daily at 00:05 UTC"  # type: ignore[union-attr]


def test_a_beat_process_sends_the_schedule_and_staff_see_the_last_runs(
    tmp_path: Path, staff_user: Any, client: Client
) -> None:
    flush_redis(BROKER_URL)
    # The view-count flush every second instead of every minute.
    with (
        celery_worker(BROKER_URL, tmp_path, queues="default", VIEW_FLUSH_INTERVAL="1") as worker,
        celery_beat(BROKER_URL, tmp_path, VIEW_FLUSH_INTERVAL="1") as beat,
    ):
        assert wait_until(
            lambda: ScheduledRun.objects.filter(name="streaming-flush-view-counts", runs__gte=2).exists(),
            timeout=60,
        ), worker.tail() + beat.tail()
    flush_redis(BROKER_URL)
    run = ScheduledRun.objects.get(name="streaming-flush-view-counts")
    assert (run.task, run.last_status, run.failures) == ("streaming.plays.flush_view_counts", "success", 0)
    assert run.last_finished_at is not None and run.last_finished_at >= run.last_started_at

    client.force_login(staff_user)
    page = client.get("/admin/jobs/scheduledrun/")
    assert page.status_code == 200
    html = page.content.decode()
    for job in scheduled_jobs():
        assert job.name in html
    assert "never run" in html  # the other entries have not run yet
    assert 'class="status">success<' in html


# --- Each scheduled job's effect, run as beat runs it, by a real worker -----------------------------


@pytest.fixture(scope="module")
def scheduled_worker(django_db_setup: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    tmp = tmp_path_factory.mktemp("scheduled")
    (tmp / "work").mkdir()
    flush_redis(BROKER_URL)
    with celery_worker(BROKER_URL, tmp, TRANSCODE_WORK_DIR=str(tmp / "work"), MEDIA_ROOT=str(tmp / "media")):
        yield tmp
    flush_redis(BROKER_URL)


def run_scheduled(name: str) -> ScheduledRun:
    """Sends a scheduled job exactly as beat does, and waits for the worker to record its run."""
    job = scheduled_job(name)
    assert job is not None
    before = ScheduledRun.objects.filter(name=name).values_list("runs", flat=True).first() or 0
    with app_on_broker(BROKER_URL) as app:
        app.send_task(job.task, **job.beat_entry()["options"])
    assert wait_until(
        lambda: (
            ScheduledRun.objects.filter(name=name, runs__gt=before).exclude(last_status="running").exists()
        ),
        timeout=60,
    ), f"{name} did not run"
    run = ScheduledRun.objects.get(name=name)
    assert run.last_status == "success", run.last_error
    return run


def test_flush_view_counts_adds_buffered_plays_to_view_counts(scheduled_worker: Path) -> None:
    video = VideoFactory(ready=True)
    for viewer in ("a:one", "a:two"):
        assert media_services.video_play_record(video=video, user=None, viewer=viewer, rendition_quality=None)
    run_scheduled("streaming-flush-view-counts")
    video.refresh_from_db()
    assert video.view_count == 2


def test_qoe_rollup_writes_each_videos_daily_playback_quality(scheduled_worker: Path) -> None:
    import uuid

    from streaming import qoe
    from streaming.models import VideoQoeDaily

    video = VideoFactory(ready=True)
    for startup in (600, 1400):
        events = [{"type": "startup", "startup_ms": startup}, {"type": "rebuffer", "duration_ms": 500}]
        assert qoe.record_video_events(video_id=video.pk, view_id=uuid.uuid4(), events=events)
    run_scheduled("streaming-qoe-rollup")
    row = VideoQoeDaily.objects.get(video=video)
    assert (row.views, row.startup_p50_ms, row.startup_p95_ms, row.rebuffers) == (2, 600, 1400, 2)


def test_cache_warm_fills_the_shared_cache(scheduled_worker: Path, django_assert_num_queries: Any) -> None:
    from subscriptions.selectors import plan_list_active
    from videoplatform import cache

    run = run_scheduled("cache-warm")
    assert run.last_result.startswith("'Warmed")
    cache.reset()  # this process's L1 is empty: the answer comes from the shared L2
    with django_assert_num_queries(0):
        plan_list_active()


def test_recommendations_refresh_stores_co_watched_videos(scheduled_worker: Path) -> None:
    first, second, third = (
        VideoFactory(ready=True, title=title, tags=[tag])
        for title, tag in (
            ("Knots for sailors", "sailing"),
            ("Bread at home", "baking"),
            ("Tying a bowline", "sailing"),
        )
    )
    search_index_update(video_ids=[first.pk, second.pk, third.pk])  # as their indexing jobs would
    for user in (UserFactory(), UserFactory()):
        for video in (first, second):
            WatchEvent.objects.using("default").create(user_id=user.pk, video_id=video.pk)
    run_scheduled("recommendations-refresh")
    items = RelatedVideos.objects.get(video=first).items
    assert items[0]["video_id"] == second.pk and items[0]["source"] == "cowatch"
    assert {"video_id": third.pk, "source": "similar"}.items() <= next(
        item for item in items if item["video_id"] == third.pk
    ).items()


def test_expire_lapsed_subscriptions_ends_subscriptions_whose_period_is_over(scheduled_worker: Path) -> None:
    lapsed = SubscriptionFactory(current_period_end=timezone.now() - timedelta(days=1))
    current = SubscriptionFactory()
    run_scheduled("subscriptions-expire-lapsed")
    assert Subscription.objects.get(pk=lapsed.pk).status == Subscription.Status.EXPIRED
    assert Subscription.objects.get(pk=current.pk).status == Subscription.Status.ACTIVE


def test_purge_expired_tokens_deletes_only_expired_tokens(scheduled_worker: Path) -> None:
    user = UserFactory()
    AuthToken.objects.create(digest="a" * 64, user=user, expires_at=timezone.now() - timedelta(seconds=1))
    AuthToken.objects.create(digest="b" * 64, user=user, expires_at=timezone.now() + timedelta(days=1))
    run_scheduled("accounts-purge-expired-tokens")
    assert list(AuthToken.objects.values_list("digest", flat=True)) == ["b" * 64]


def test_uploads_cleanup_deletes_abandoned_uploads_and_stale_temporary_files(scheduled_worker: Path) -> None:
    long_ago = timezone.now() - timedelta(days=8)
    abandoned = VideoFactory(status=Video.Status.AWAITING_UPLOAD)
    Video.objects.filter(pk=abandoned.pk).update(created_at=long_ago)
    MediaFile.objects.create(video=abandoned, source_path=f"videos/{abandoned.pk}/source/clip.mp4")
    partial = scheduled_worker / "media" / "videos" / abandoned.pk / "source" / "clip.mp4"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"half a file")
    waiting = VideoFactory(status=Video.Status.AWAITING_UPLOAD)  # created just now: still expected
    processed = VideoFactory(ready=True)
    Video.objects.filter(pk=processed.pk).update(created_at=long_ago)
    stale, fresh = (
        scheduled_worker / "work" / "transcode-crashed",
        scheduled_worker / "work" / "transcode-running",
    )
    for folder in (stale, fresh):
        folder.mkdir()
        (folder / "segment.ts").write_bytes(b"x")
    three_days_ago = time.time() - 3 * 24 * 3600
    os.utime(stale, (three_days_ago, three_days_ago))

    run = run_scheduled("uploads-cleanup")
    assert set(Video.objects.values_list("pk", flat=True)) == {waiting.pk, processed.pk}
    assert not partial.exists()
    assert not stale.exists() and fresh.exists()
    assert "'uploads_deleted': 1" in run.last_result


def test_prune_failures_forgets_old_failures(scheduled_worker: Path) -> None:
    old = TaskFailure.objects.create(
        task_id="1", task_name="x", exception_type="E", failed_at=timezone.now() - timedelta(days=40)
    )
    recent = TaskFailure.objects.create(task_id="2", task_name="x", exception_type="E")
    run_scheduled("jobs-prune-failures")
    assert list(TaskFailure.objects.values_list("pk", flat=True)) == [recent.pk]
    assert not TaskFailure.objects.filter(pk=old.pk).exists()


def test_resend_stale_emails_sends_emails_whose_job_was_lost(scheduled_worker: Path) -> None:
    user = UserFactory()
    lost = EmailDelivery.objects.create(user=user, kind="welcome", to=user.email, context={"name": "Ann"})
    EmailDelivery.objects.filter(pk=lost.pk).update(created_at=timezone.now() - timedelta(hours=2))
    run_scheduled("emails-resend-stale")
    assert wait_until(lambda: EmailDelivery.objects.get(pk=lost.pk).status == "sent", timeout=30)
