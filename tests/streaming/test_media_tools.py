"""Missing media tools are a named failure: uploads answer 503 ``media_tools_unavailable``, the
detailed health page lists the tools and their versions, and a worker without them does not
take transcoding jobs (they wait in the queue instead of failing one by one)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from django.db import connection

from streaming import media_tools
from streaming.models import MediaFile
from tests.support.processes import ROOT, VENV_BIN, base_env, wait_until
from videos.models import Video

MISSING = "/nonexistent/bin/ffprobe-missing"


def test_versions_are_read_from_the_programs():
    found = media_tools.report()
    assert found["ffmpeg"] is not None and found["ffmpeg"].startswith("ffmpeg ")
    assert found["ffprobe"] is not None and found["ffprobe"].startswith("ffprobe ")
    assert media_tools.missing() == []
    assert "MISSING" not in media_tools.summary()


def test_summary_names_the_missing_program(settings):
    settings.FFMPEG_BINARY = "/nonexistent/bin/ffmpeg"
    assert media_tools.missing() == ["ffmpeg"]
    assert media_tools.report()["ffmpeg"] is None
    line = media_tools.summary()
    assert "ffmpeg MISSING" in line
    assert "ffmpeg is not installed" in line


@pytest.mark.django_db
def test_upload_without_ffprobe_is_503_naming_it_and_changes_nothing(user_client, clip, settings):
    settings.FFPROBE_BINARY = MISSING
    before = Video.objects.count()
    with open(clip(width=320, height=240, duration=1), "rb") as handle:
        response = user_client.post(
            "/api/videos/create", {"file": handle, "title": "No tools"}, format="multipart"
        )
    assert response.status_code == 503, response.content
    error = response.json()["error"]
    assert error["code"] == "media_tools_unavailable"
    assert "ffprobe is not installed" in error["message"]
    assert Video.objects.count() == before


@pytest.mark.django_db
def test_upload_to_the_upload_url_without_ffprobe_is_503_and_stays_pending(user_client, clip, settings):
    created = user_client.post("/api/videos", {"title": "Later"}, format="json")
    assert created.status_code == 201, created.content
    video_id = created.json()["id"]
    settings.FFPROBE_BINARY = MISSING
    body = Path(clip(width=320, height=240, duration=1)).read_bytes()
    response = user_client.put(f"/api/videos/{video_id}/upload", body, content_type="video/mp4")
    assert response.status_code == 503, response.content
    assert response.json()["error"]["code"] == "media_tools_unavailable"
    assert MediaFile.objects.get(video_id=video_id).status == MediaFile.Status.AWAITING_UPLOAD
    # With the tool back, the same upload goes through.
    settings.FFPROBE_BINARY = "ffprobe"
    response = user_client.put(f"/api/videos/{video_id}/upload", body, content_type="video/mp4")
    assert response.status_code in (200, 201, 202), response.content


@pytest.mark.django_db
def test_detailed_health_lists_media_tools_with_versions(client, staff_user, settings):
    client.force_login(staff_user)
    checks = client.get("/health/detail?format=json").json()
    (name,) = [name for name in checks if name.startswith("MediaTools")]
    assert "ffmpeg " in name and "ffprobe " in name, name
    assert checks[name] == "OK"

    settings.FFMPEG_BINARY = "/nonexistent/bin/ffmpeg"
    response = client.get("/health/detail?format=json")
    assert response.status_code == 500
    (name,) = [name for name in response.json() if name.startswith("MediaTools")]
    assert "ffmpeg missing" in name
    assert "ffmpeg is not installed" in response.json()[name]


# --- The worker ------------------------------------------------------------------------------


def _worker(env: dict[str, str], queues: str, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as handle:
        return subprocess.Popen(
            [
                str(VENV_BIN / "celery"),
                "-A",
                "videoplatform",
                "worker",
                "-Q",
                queues,
                "--concurrency",
                "1",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-l",
                "info",
            ],
            cwd=ROOT,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture
def worker_env(celery_broker: str, media_root: Path, tmp_path: Path) -> dict[str, str]:
    db = connection.settings_dict
    host, port = db["HOST"] or "127.0.0.1", db["PORT"] or 5432
    return base_env(
        DJANGO_SETTINGS_MODULE="settings.test",
        DATABASE_URL=f"postgres://{db['USER']}:{db['PASSWORD']}@{host}:{port}/{db['NAME']}",
        REDIS_URL=os.environ.get("REDIS_URL", ""),
        CELERY_BROKER_URL=celery_broker,
        MEDIA_ROOT=str(media_root),
        VAR_DIR=str(tmp_path / "var"),
        DB_CONN_MAX_AGE="0",
        FFMPEG_BINARY="/nonexistent/bin/ffmpeg",
    )


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_worker_without_ffmpeg_leaves_transcoding_jobs_queued(
    worker_env: dict[str, str], celery_broker: str, user_client: Any, clip: Any, tmp_path: Path
):
    log = tmp_path / "worker.log"
    process = _worker(worker_env, "default,transcoding", log)
    try:
        assert wait_until(lambda: "ready." in log.read_text(errors="replace"), timeout=90), log.read_text()
        text = log.read_text()
        assert "does not take transcoding jobs" in text and "ffmpeg is not installed" in text, text
        # This process has the tools: the upload is accepted and a transcode job is queued.
        with open(clip(width=320, height=240, duration=1), "rb") as handle:
            response = user_client.post(
                "/api/videos/create", {"file": handle, "title": "Waits"}, format="multipart"
            )
        assert response.status_code == 201, response.content
        video_id = response.json()["id"]
        time.sleep(8)  # time enough for a consuming worker to take it
        assert MediaFile.objects.get(video_id=video_id).status == MediaFile.Status.UPLOADED
        # Still in the broker: the transcoding queue's lists (one per priority step) hold it.
        broker = redis.Redis.from_url(celery_broker)
        waiting = sum(broker.llen(key) for key in broker.scan_iter(match="transcoding*"))
        assert waiting == 1
        assert process.poll() is None  # the worker runs on for its other queues
    finally:
        _stop(process)


@pytest.mark.slow
def test_worker_of_the_transcoding_queue_alone_refuses_to_start(worker_env: dict[str, str], tmp_path: Path):
    log = tmp_path / "worker.log"
    process = _worker(worker_env, "transcoding", log)
    try:
        assert process.wait(timeout=90) != 0
        text = log.read_text()
        assert "worker not started" in text and "ffmpeg is not installed" in text, text
    finally:
        _stop(process)
