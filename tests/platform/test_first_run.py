"""A newcomer's first run: ``scripts/run.sh`` in a clean copy of the checkout (its own folder,
port and SQLite database; no service of the test environment) ends with "ready", and by then
the feed lists the demo videos as ready, their watch pages answer and Chromium plays one.

The copy holds what a clone holds (tracked files and new ones that are not ignored: no
``var/``, no ``staticfiles/``) and reuses this test run's virtualenv, so nothing is installed
again. Collected static files are kept between runs under ``var/test-cache`` of the checkout
(run.sh collects them again only when they changed).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import browser as chromium_browser
from tests.support.processes import ROOT, VENV_BIN, free_port, http_get

pytestmark = pytest.mark.slow

# A bound well above what it takes on a loaded two-core machine (about four minutes with the
# static files collected from scratch, two when they are cached).
READY_WITHIN = 900
DEMO_VIDEOS = 5
# The platform's own variables: the first run must not see the test environment's services.
PLATFORM_VARIABLES = (
    "DJANGO_SETTINGS_MODULE",
    "DATABASE_URL",
    "DATABASE_REPLICA_URLS",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "PROMETHEUS_MULTIPROC_DIR",
    "VAR_DIR",
    "MEDIA_ROOT",
    "STATIC_ROOT",
    "PORT",
    "HOST",
)


def clean_copy(target: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        source = ROOT / os.fsdecode(name)
        if source.is_file():  # a tracked file deleted in the checkout is not copied
            destination = target / os.fsdecode(name)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)  # keeps modification times: collectstatic skips
    (target / ".venv").symlink_to(VENV_BIN.parent, target_is_directory=True)


class FirstRun:
    def __init__(self, folder: Path, port: int) -> None:
        self.folder = folder
        self.base = f"http://127.0.0.1:{port}"
        self.output = folder / "run.out"
        env = {key: value for key, value in os.environ.items() if key not in PLATFORM_VARIABLES}
        env.update(
            PORT=str(port),
            DEMO_WAIT=str(READY_WITHIN),
            STATIC_ROOT=str(ROOT / "var" / "test-cache" / "staticfiles"),
        )
        with open(self.output, "wb") as out:
            self.process = subprocess.Popen(
                ["bash", "scripts/run.sh"],
                cwd=folder,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def logs(self) -> str:
        parts = [self.text()[-3000:]]
        for name in ("worker.log", "web.log"):
            path = self.folder / "var" / "log" / name
            if path.exists():
                parts.append(f"--- {name}\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)

    def wait_ready(self, timeout: float) -> float:
        """Seconds until run.sh says ready; prints when each of its steps began."""
        started = time.monotonic()
        steps: dict[str, float] = {}
        while True:
            text = self.text()
            for line in text.splitlines():
                if line.startswith(("== ", "[1/4]", "[3/4] demo clips 1/", "[4/4]")):
                    steps.setdefault(line.split(":")[0], time.monotonic() - started)
            if "is ready on" in text:
                break
            assert self.process.poll() is None, f"run.sh exited ({self.process.returncode})\n{self.logs()}"
            assert time.monotonic() - started < timeout, f"not ready within {timeout} s\n{self.logs()}"
            time.sleep(0.5)
        print("\n".join(f"{at:6.0f} s  {step}" for step, at in steps.items()))
        return time.monotonic() - started

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def get_json(self, path: str) -> dict:  # type: ignore[type-arg]
        status, body = http_get(self.base + path, timeout=10)
        assert status == 200, (path, status, body[:500])
        return json.loads(body)  # type: ignore[no-any-return]


@pytest.fixture
def first_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirstRun]:
    folder = tmp_path_factory.mktemp("first-run") / "videoplatform"
    clean_copy(folder)
    run = FirstRun(folder, free_port())
    try:
        yield run
    finally:
        run.stop()
        shutil.rmtree(folder, ignore_errors=True)


def test_run_sh_from_a_clean_copy_ends_ready_with_playable_demo_videos(first_run: FirstRun):
    seconds = first_run.wait_ready(READY_WITHIN)
    print(f"\nrun.sh said ready after {seconds:.0f} s")
    output = first_run.text()
    assert "ffmpeg " in output.split("== database")[0]  # the media tools and their versions
    assert f"transcoding: {DEMO_VIDEOS}/{DEMO_VIDEOS} ready" in output, first_run.logs()

    feed = first_run.get_json("/api/videos")
    videos = feed["data"]
    assert len(videos) == DEMO_VIDEOS and all(v["status"] == "ready" for v in videos), feed
    titles = {v["title"]: v["id"] for v in videos}

    # Different sizes, one portrait, one without audio: as the worker measured them.
    request = urllib.request.Request(
        f"{first_run.base}/api/auth/login",
        data=json.dumps({"username": "demo", "password": "demo-password-123"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        token = json.loads(response.read())["token"]
    media = {}
    for title, video_id in titles.items():
        status, body = http_get(
            f"{first_run.base}/api/videos/{video_id}/media", headers={"Authorization": f"Bearer {token}"}
        )
        assert status == 200, body
        media[title] = json.loads(body)
    sizes = {(m["width"], m["height"]) for m in media.values()}
    assert len(sizes) == DEMO_VIDEOS
    assert any(height > width for width, height in sizes)
    assert sum(1 for m in media.values() if not m["audio_codec"]) == 1

    for video_id in titles.values():
        status, page = http_get(f"{first_run.base}/watch/{video_id}")
        assert status == 200 and b'id="video"' in page
    status, home = http_get(f"{first_run.base}/")
    assert status == 200 and home.count(b'<img class="poster"') == DEMO_VIDEOS
    for path in ("/api/docs", "/health", "/metrics"):
        assert http_get(first_run.base + path)[0] == 200, path

    if not chromium_browser.available():
        pytest.skip("chromium is not installed (streaming/tools/install-browser.sh)")
    with chromium_browser.chromium() as browser:
        browser.get(f"{first_run.base}/watch/{titles['Test card with a tone (720p)']}")
        assert "Test card" in browser.title
        chromium_browser.wait_until_played(browser, seconds=1.0)
        assert browser.execute_script("return document.getElementById('video').videoHeight") > 0
