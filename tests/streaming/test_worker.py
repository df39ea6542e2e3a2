"""The transcode task on a real Celery worker process (queue ``transcoding``), and its retries."""

from __future__ import annotations

import os
import signal
import time

import pytest

from streaming import services, storage
from streaming.models import MediaFile
from streaming.tasks import transcode_media_file
from tests.factories import VideoFactory
from tests.support.processes import wait_until
from videos.models import Video


def _wait_for_status(media_file_id: str, statuses: set[str], timeout: float = 120.0) -> MediaFile:
    seen: list[int] = []

    def done() -> bool:
        media_file = MediaFile.objects.get(pk=media_file_id)
        seen.append(media_file.progress)
        return media_file.status in statuses

    assert wait_until(done, timeout=timeout, interval=0.2), f"still {MediaFile.objects.get(pk=media_file_id)}"
    return MediaFile.objects.get(pk=media_file_id)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_an_upload_is_transcoded_by_the_worker_and_becomes_playable(
    user, user_client, clip, transcoding_worker, media_root
):
    with open(clip(width=854, height=480, duration=2.5), "rb") as handle:
        response = user_client.post(
            "/api/videos/create", {"file": handle, "title": "Worker"}, format="multipart"
        )
    assert response.status_code == 201, response.content
    video_id = response.json()["id"]
    media_file = _wait_for_status(MediaFile.objects.get(video_id=video_id).pk, {"ready", "failed"})
    assert media_file.status == "ready", (media_file.error, transcoding_worker.tail())
    assert media_file.progress == 100 and media_file.attempts == 1
    assert [r.quality for r in media_file.renditions.all()] == [480, 360]
    assert Video.objects.get(pk=video_id).status == Video.Status.READY
    assert user_client.get(f"/api/videos/{video_id}/stream").status_code == 200
    assert "video ready: " + video_id in transcoding_worker.tail()  # the owner was notified


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_crash_mid_transcode_yields_exactly_one_set_of_renditions(
    user, user_client, clip, transcoding_worker, media_root, settings
):
    # Long enough (8 s at 24 fps, 720p) to be caught in the middle.
    with open(clip(width=1280, height=720, duration=8, fps=24), "rb") as handle:
        response = user_client.post(
            "/api/videos/create", {"file": handle, "title": "Crash"}, format="multipart"
        )
    video_id = response.json()["id"]
    media_file_id = MediaFile.objects.get(video_id=video_id).pk
    assert wait_until(
        lambda: MediaFile.objects.get(pk=media_file_id).progress >= 5, timeout=120, interval=0.1
    ), transcoding_worker.tail()
    crashed_run = MediaFile.objects.get(pk=media_file_id).run_token
    # The pool process dies (as in an out-of-memory kill): its message was not acknowledged.
    (child,) = transcoding_worker.child_pids()
    os.kill(child, signal.SIGKILL)

    media_file = _wait_for_status(media_file_id, {"ready", "failed"}, timeout=180)
    assert media_file.status == "ready", (media_file.error, transcoding_worker.tail())
    assert media_file.attempts == 2 and media_file.run_token != crashed_run
    assert [r.quality for r in media_file.renditions.all()] == [720, 480, 360]
    # One run's outputs in storage, and no temporary folder of the crashed run.
    assert os.listdir(media_root / storage.hls_root(video_id)) == [media_file.run_token]
    work = media_root / ".work"

    def leftovers() -> list[str]:
        return [name for name in os.listdir(work) if media_file_id in name]

    # The run removes its own folder just after it commits "ready": give it that moment.
    assert wait_until(lambda: not leftovers(), timeout=15), (
        crashed_run,
        media_file.run_token,
        leftovers(),
        os.popen("ps aux | grep [f]fmpeg").read(),
    )


@pytest.mark.django_db
def test_transient_failures_are_retried_three_times_then_fail(django_capture_on_commit_callbacks):
    video = VideoFactory(status=Video.Status.PROCESSING)
    media_file = MediaFile.objects.create(
        video=video, status=MediaFile.Status.UPLOADED, source_path=f"videos/{video.pk}/source/lost.mp4"
    )
    # Run eagerly: Celery applies each retry at once (the countdowns are checked below).
    result = transcode_media_file.apply(args=(media_file.pk,))
    assert result.get() == "failed"
    media_file.refresh_from_db()
    assert media_file.status == MediaFile.Status.FAILED
    assert media_file.attempts == 4  # the first try and 3 retries
    assert media_file.error.startswith("Gave up after 4 attempts")
    assert Video.objects.get(pk=video.pk).status == Video.Status.FAILED


def test_backoff_is_exponential_from_five_seconds():
    assert [services.retry_countdown(n) for n in range(3)] == [5, 10, 20]
    assert transcode_media_file.max_retries == 3
    assert transcode_media_file.acks_late is True


@pytest.mark.django_db
def test_a_permanent_failure_is_not_retried(scratch_dir):
    video = VideoFactory(status=Video.Status.PROCESSING)
    name = storage.source_name(video.pk, "text.mp4")
    with open(scratch_dir / "text.mp4", "wb") as handle:
        handle.write(b"plain text " * 30)
    with open(scratch_dir / "text.mp4", "rb") as handle:
        storage.save_file(name, handle)
    media_file = MediaFile.objects.create(video=video, status=MediaFile.Status.UPLOADED, source_path=name)
    transcode_media_file.apply(args=(media_file.pk,))
    media_file.refresh_from_db()
    assert media_file.status == MediaFile.Status.FAILED and media_file.attempts == 1


def test_time_limit_scales_with_duration(settings):
    settings.TRANSCODE_TIME_LIMIT_BASE = 300
    settings.TRANSCODE_TIME_LIMIT_PER_SECOND = 6.0
    assert services.transcode_time_limit(None) == 300
    assert services.transcode_time_limit(600) == 300 + 3600
    assert services.transcode_time_limit(7200) > services.transcode_time_limit(600)


@pytest.mark.django_db
def test_enqueued_with_limits_from_the_duration(django_capture_on_commit_callbacks, monkeypatch):
    sent = []
    monkeypatch.setattr(
        transcode_media_file, "apply_async", lambda *args, **kwargs: sent.append((args, kwargs))
    )
    video = VideoFactory()
    media_file = MediaFile.objects.create(
        video=video, status=MediaFile.Status.FAILED, duration=100, source_path="x"
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert services.media_file_retranscode(media_file=media_file)
    ((args, kwargs),) = sent
    limit = services.transcode_time_limit(100)
    assert args == ((media_file.pk,),)
    assert kwargs == {"soft_time_limit": limit + 60, "time_limit": limit + 120}
    media_file.refresh_from_db()
    assert media_file.status == MediaFile.Status.UPLOADED


def test_transcode_task_is_routed_to_the_transcoding_queue():
    from videoplatform.celery import app

    assert app.amqp.router.route({}, transcode_media_file.name)["queue"].name == "transcoding"
    time.sleep(0)
