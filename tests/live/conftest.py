"""Fixtures of the live tests: the real ingest (nginx-rtmp + the packager), an ffmpeg
broadcaster, media storage in a temporary folder, and a real Celery worker."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from tests.streaming.conftest import (  # noqa: F401 - fixtures
    Worker,
    _media_storage,
    celery_broker,
    media_root,
)
from tests.support.processes import ROOT, base_env, free_port, http_get, wait_until

HOOK_SECRET = "test-live-hook-secret"
NGINX_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")
INGEST_AVAILABLE = bool(shutil.which("nginx") or Path("/usr/sbin/nginx").exists()) and NGINX_MODULE.exists()
needs_ingest = pytest.mark.skipif(
    not INGEST_AVAILABLE, reason="nginx and libnginx-mod-rtmp are not installed (scripts/services.sh up)"
)


@pytest.fixture(autouse=True)
def _live_settings(settings: Any, _media_storage: None) -> None:  # noqa: F811 - media as in streaming
    settings.LIVE_HOOK_SECRET = HOOK_SECRET


class Ingest:
    """One ingest run by scripts/live-ingest.sh in the foreground (stopped with SIGTERM)."""

    def __init__(self, hooks_url: str, directory: Path, update_seconds: int = 2) -> None:
        self.rtmp_port = free_port()
        self.http_port = free_port()
        self.dir = directory
        self.hooks_url = hooks_url
        self.update_seconds = update_seconds
        self.process: subprocess.Popen[bytes] | None = None
        self.log = directory / "ingest.out"

    @property
    def rtmp_url(self) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/live"

    @property
    def origin_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/live"

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "LIVE_HOOK_SECRET": HOOK_SECRET,
            "LIVE_UPDATE_SECONDS": str(self.update_seconds),
            "LIVE_IDLE_PUBLISHER_SECONDS": "3",
        }
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [
                    "bash",
                    str(ROOT / "scripts" / "live-ingest.sh"),
                    "--rtmp-port",
                    str(self.rtmp_port),
                    "--http-port",
                    str(self.http_port),
                    "--hooks-url",
                    self.hooks_url,
                    "--dir",
                    str(self.dir),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        assert wait_until(
            lambda: http_get(f"http://127.0.0.1:{self.http_port}/healthz", timeout=1)[0] == 200, timeout=20
        ), self.tail()

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def tail(self) -> str:
        parts = []
        for name in ("ingest.out", "error.log"):
            path = self.dir / name
            if path.exists():
                parts.append(f"--- {name}\n" + path.read_text(errors="replace")[-3000:])
        return "\n".join(parts)


@pytest.fixture
def ingest(live_server: Any, tmp_path: Path) -> Iterator[Ingest]:
    running = Ingest(f"{live_server.url}/internal/live/hooks", tmp_path / "ingest")
    running.start()
    try:
        yield running
    finally:
        running.stop()


def make_source(folder: Path, width: int = 640, height: int = 360, fps: int = 15) -> Path:
    """An 8 s H.264 (1 s keyframe interval) + AAC clip in FLV: a broadcaster's output,
    pre-encoded so that publishing it (-c copy) costs almost nothing."""
    path = folder / f"source-{width}x{height}-{fps}.flv"
    if path.exists():
        return path
    subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size={width}x{height}:rate={fps}:duration=8",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=44100:duration=8",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-g",
            str(fps),
            "-keyint_min",
            str(fps),
            "-sc_threshold",
            "0",
            "-b:v",
            "400k",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "64k",
            "-f",
            "flv",
            str(path),
        ],
        check=True,
        timeout=120,
    )
    return path


@pytest.fixture(scope="session")
def sources_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("live-sources")


@pytest.fixture(scope="session")
def live_source(sources_dir: Path) -> Path:
    return make_source(sources_dir)


class Broadcaster:
    """ffmpeg publishing the source in real time (looped) over RTMP."""

    def __init__(self, source: Path, url: str, log: Path) -> None:
        self.source = source
        self.url = url
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> subprocess.Popen[bytes]:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [
                    "ffmpeg",
                    "-hide_banner",
                    "-loglevel",
                    "error",
                    "-nostdin",
                    "-re",
                    "-stream_loop",
                    "-1",
                    "-i",
                    str(self.source),
                    "-c",
                    "copy",
                    "-f",
                    "flv",
                    self.url,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self.process

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # ffmpeg closes the RTMP stream cleanly
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None


@pytest.fixture
def broadcaster(live_source: Path, tmp_path: Path) -> Iterator[Callable[..., Broadcaster]]:
    started: list[Broadcaster] = []

    def make(url: str, source: Path | None = None) -> Broadcaster:
        publisher = Broadcaster(source or live_source, url, tmp_path / f"publisher{len(started)}.log")
        started.append(publisher)
        return publisher

    yield make
    for publisher in started:
        publisher.stop()


@pytest.fixture
def live_worker(celery_broker: str, media_root: Path, tmp_path: Path) -> Iterator[Worker]:  # noqa: F811
    db = connection.settings_dict
    host, port = db["HOST"] or "127.0.0.1", db["PORT"] or 5432
    env = base_env(
        DJANGO_SETTINGS_MODULE="settings.test",
        DATABASE_URL=f"postgres://{db['USER']}:{db['PASSWORD']}@{host}:{port}/{db['NAME']}",
        REDIS_URL=os.environ.get("REDIS_URL", ""),
        CELERY_BROKER_URL=celery_broker,
        MEDIA_ROOT=str(media_root),
        VAR_DIR=str(tmp_path / "var"),
        TRANSCODE_PROGRESS_INTERVAL="0.2",
        TRANSCODE_X264_PRESET="ultrafast",
        LIVE_HOOK_SECRET=HOOK_SECRET,
        DB_CONN_MAX_AGE="0",
    )
    # The queues live uses: default (the replay, the window) and transcoding (the replay's ladder).
    worker = Worker(env, tmp_path / "worker.log", queues="default,transcoding")
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
