"""Fixtures of the media pipeline's tests: storage in a temporary folder, generated clips, a
ready-made HLS ladder, and a real Celery worker on the ``transcoding`` queue."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import redis
from django.db import connection
from django.utils import timezone

from streaming import ladder, services
from streaming.models import MediaFile, Rendition
from streaming.probe import probe
from tests.factories import VideoFactory
from tests.streaming.media import make_clip
from tests.support.processes import ROOT, VENV_BIN, base_env, wait_until
from videos.models import Video

BROKER_URL = os.environ.get("MEDIA_TEST_BROKER_URL", "redis://127.0.0.1:6379/10")


@pytest.fixture(scope="session")
def clips_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def media_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(autouse=True)
def _media_storage(settings: Any, media_root: Path) -> None:
    settings.MEDIA_ROOT = media_root
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(media_root), "base_url": "/media/"},
        },
    }
    settings.TRANSCODE_WORK_DIR = ""
    settings.TRANSCODE_PROGRESS_INTERVAL = 0.2


@pytest.fixture(scope="session")
def clip(clips_dir: Path) -> Callable[..., Path]:
    def make(**spec: Any) -> Path:
        return make_clip(clips_dir, **spec)

    return make


@pytest.fixture(scope="session")
def shared_ladder(tmp_path_factory: pytest.TempPathFactory, clips_dir: Path) -> dict[str, Any]:
    """A full four-rung ladder (1080p source, 2.5 s, with audio) made once per session."""
    source = make_clip(clips_dir, width=1920, height=1080, duration=2.5, fps=10)
    out = tmp_path_factory.mktemp("ladder") / "out"
    (out / ladder.THUMBNAIL_DIR).mkdir(parents=True)
    result = probe(str(source))
    rungs = ladder.ladder_for(result)
    command = ladder.ffmpeg_command(
        ffmpeg="ffmpeg",
        source=str(source),
        output_dir=str(out),
        probe=result,
        rungs=rungs,
        preset="ultrafast",
    )
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    services._write_masters(str(out), rungs)
    return {"dir": out, "rungs": rungs, "probe": result}


@pytest.fixture
def ready_video(shared_ladder: dict[str, Any], media_root: Path) -> Callable[..., Video]:
    """Makes a ready video whose media is the shared ladder (linked into storage)."""

    def make(**video_fields: Any) -> Video:
        video = VideoFactory(status=Video.Status.READY, duration=2.5, **video_fields)
        run = "run0001"
        prefix = f"videos/{video.pk}/hls/{run}"
        target = media_root / prefix
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.symlink_to(shared_ladder["dir"], target_is_directory=True)
        thumbs = sorted(os.listdir(shared_ladder["dir"] / ladder.THUMBNAIL_DIR))
        media_file = MediaFile.objects.create(
            video=video,
            status=MediaFile.Status.READY,
            progress=100,
            source_path=f"videos/{video.pk}/source/clip.mp4",
            duration=2.5,
            width=1920,
            height=1080,
            fps=10,
            video_codec="h264",
            audio_codec="aac",
            output_prefix=prefix,
            poster_path=f"{prefix}/{ladder.POSTER}",
            thumbnail_paths=[f"{prefix}/{ladder.THUMBNAIL_DIR}/{name}" for name in thumbs],
            thumbnail_interval=10,
            run_token=run,
            ready_at=timezone.now(),
        )
        Rendition.objects.bulk_create(
            Rendition(
                media_file=media_file,
                quality=rung.quality,
                width=rung.width,
                height=rung.height,
                bandwidth=rung.bandwidth,
                codecs=rung.codecs,
                playlist_path=f"{prefix}/{rung.playlist}",
            )
            for rung in shared_ladder["rungs"]
        )
        return video

    return make


@pytest.fixture
def counter_redis(settings: Any) -> Iterator[Any]:
    """The play counter's Redis database, emptied of play keys before and after."""
    from streaming import plays

    client = plays.counter_client()
    assert client is not None, "the tests run with REDIS_URL set"

    def clean() -> None:
        for key in client.scan_iter("vp:plays:*"):
            client.delete(key)

    clean()
    yield client
    clean()


# --- A real Celery worker -------------------------------------------------------------------


@pytest.fixture
def celery_broker() -> Iterator[str]:
    """Points this process's Celery app at a Redis broker database of its own (emptied)."""
    from videoplatform.celery import app

    client = redis.Redis.from_url(BROKER_URL)
    client.flushdb()
    saved = (app.conf.broker_url, app.conf.broker_transport_options, app.conf.result_backend)
    app.conf.broker_url = BROKER_URL
    app.conf.broker_transport_options = {}
    app.conf.result_backend = None
    app._after_fork()  # drop pooled connections to the previous broker
    yield BROKER_URL
    app.conf.broker_url, app.conf.broker_transport_options, app.conf.result_backend = saved
    app._after_fork()
    client.flushdb()


class Worker:
    """A real Celery worker process (one prefork child) on ``queues``."""

    def __init__(self, env: dict[str, str], log: Path, queues: str = "transcoding") -> None:
        self.env = env
        self.log = log
        self.queues = queues
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [
                    str(VENV_BIN / "celery"),
                    "-A",
                    "videoplatform",
                    "worker",
                    "-Q",
                    self.queues,
                    "--concurrency",
                    "1",
                    "--pool",
                    "prefork",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    "-l",
                    "info",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        assert wait_until(lambda: "ready." in self.log.read_text(errors="replace"), timeout=60), self.tail()

    def child_pids(self) -> list[int]:
        assert self.process is not None
        out = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True, check=False
        ).stdout
        return [int(pid) for pid in out.split()]

    def kill_hard(self) -> None:
        """A crash: the whole worker (parent and pool) dies with SIGKILL, acks never sent."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
            except ProcessLookupError:
                pass
            self.process = None

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture
def transcoding_worker(celery_broker: str, media_root: Path, tmp_path: Path) -> Iterator[Worker]:
    """A real worker process on the transcoding queue, using the test database and media folder."""
    db = connection.settings_dict
    host, port = db["HOST"] or "127.0.0.1", db["PORT"] or 5432
    database_url = f"postgres://{db['USER']}:{db['PASSWORD']}@{host}:{port}/{db['NAME']}"
    env = base_env(
        DJANGO_SETTINGS_MODULE="settings.test",
        DATABASE_URL=database_url,
        REDIS_URL=os.environ.get("REDIS_URL", ""),
        CELERY_BROKER_URL=celery_broker,
        MEDIA_ROOT=str(media_root),
        VAR_DIR=str(tmp_path / "var"),
        TRANSCODE_PROGRESS_INTERVAL="0.2",
        DB_CONN_MAX_AGE="0",
    )
    worker = Worker(env, tmp_path / "worker.log")
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
        shutil.rmtree(tmp_path / "var", ignore_errors=True)


@pytest.fixture
def scratch_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="vp-media-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


# --- The local S3-compatible server ------------------------------------------------------------

S3_ENDPOINT = "http://127.0.0.1:9000"


@pytest.fixture
def bucket(settings: Any) -> Iterator[Any]:
    name = f"vp-media-test-{secrets.token_hex(4)}"
    s3 = boto3.resource(
        "s3",
        endpoint_url=S3_ENDPOINT,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )
    bucket = s3.create_bucket(Bucket=name)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": name,
                "endpoint_url": S3_ENDPOINT,
                "access_key": "test",
                "secret_key": "test",
                "region_name": "us-east-1",
                "signature_version": "s3v4",
            },
        },
    }
    yield bucket
    bucket.objects.all().delete()
    bucket.delete()


def upload_to_target(upload: dict[str, Any], data: bytes) -> int:
    """Sends ``data`` where an upload target says (a presigned POST form, or a PUT); the status."""
    if upload["method"] == "POST":
        response = httpx.post(upload["url"], data=upload["fields"], files={"file": ("f", data)}, timeout=30)
    else:
        response = httpx.put(upload["url"], content=data, headers=upload["headers"], timeout=30)
    assert response.status_code < 300, response.text[:300]
    return response.status_code
