"""Video start time in a real browser: headless Chromium opening /watch/{id}.

From the page asking the stream endpoint to play to the first ``playing`` event, split into its
parts as the watch page marks them (streaming/static/streaming/watch.js):

    stream      the stream endpoint's answer (signed URLs)
    master      the master playlist
    media       the first media playlist
    segment     the first segment
    start       decoding and starting playback after the first segment (to ``playing``)
    page        (apart) from the page starting to load to ``playing``: the HTML, hls.js, then all of the above

under Chromium's own network emulation (DevTools protocol ``Network.emulateNetworkConditions``):
unthrottled, 20 Mb/s 40 ms, 5 Mb/s 80 ms, 1.5 Mb/s 150 ms. The browser cache is disabled, so
every run fetches everything (a viewer's first play); the origin is warm after the first run of
a case (its first run is reported apart as "cold").

    python bench/playback.py                 # 50 runs per case (about 20 minutes)
    python bench/playback.py --runs 8        # quick look
    python bench/playback.py --cases unthrottled,1.5mbps

It runs the platform on the embedded default (SQLite, no Redis) under gunicorn in a throwaway
folder, with a generated 1080p source transcoded by the real pipeline, and an anonymous viewer
(free plan: up to 480p). Needs ffmpeg, Debian's chromium and chromium-driver
(streaming/tools/install-browser.sh). It prints figures and never asserts timings.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
    "--autoplay-policy=no-user-gesture-required",
    "--mute-audio",
    "--window-size=1280,800",
)
PARTS = (
    ("stream", None, "stream_answer"),
    ("master", "stream_answer", "master_playlist"),
    ("media", "master_playlist", "media_playlist"),
    ("segment", "media_playlist", "first_segment"),
    ("start", "first_segment", "playing"),
)
TARGET_MS = 2000


@dataclass(frozen=True)
class Shape:
    name: str
    mbps: float | None  # None: unthrottled
    latency_ms: int

    def conditions(self) -> dict[str, Any]:
        rate = -1 if self.mbps is None else int(self.mbps * 1_000_000 / 8)
        return {
            "offline": False,
            "latency": self.latency_ms,
            "downloadThroughput": rate,
            "uploadThroughput": rate,
        }


SHAPES = {
    shape.name: shape
    for shape in (
        Shape("unthrottled", None, 0),
        Shape("20mbps", 20, 40),
        Shape("5mbps", 5, 80),
        Shape("1.5mbps", 1.5, 150),
    )
}


def chromium_driver() -> Any:
    """Headless Chromium through chromedriver (selenium), as the watch-page test drives it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(120)
    return driver


def play_once(driver: Any, url: str, timeout: float = 90.0) -> dict[str, Any]:
    """Opens the watch page and waits for the first ``playing``; the page's marks (ms)."""
    driver.get("about:blank")
    driver.get(url)
    deadline = time.monotonic() + timeout
    while True:
        state = driver.execute_script(
            "var p = window.videoplatformPlayer;"
            "return p ? {marks: p.marks, error: p.error, height: p.height, asked: p.askedAt} : null"
        )
        if state and state["error"]:
            raise RuntimeError(f"playback failed: {state['error']}")
        if state and "playing" in state["marks"]:
            marks = dict(state["marks"])
            marks["height"] = state["height"]
            marks["page"] = (state["asked"] or 0) + marks["playing"]  # from the page starting to load
            return marks
        if time.monotonic() > deadline:
            raise RuntimeError(f"no playback within {timeout:.0f} s: {state}")
        time.sleep(0.02)


def measure(driver: Any, url: str, shape: Shape, runs: int) -> list[dict[str, Any]]:
    """``runs`` plays of ``url`` under ``shape``, each with the browser cache disabled."""
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
    driver.execute_cdp_cmd("Network.emulateNetworkConditions", shape.conditions())
    try:
        return [play_once(driver, url) for _ in range(runs)]
    finally:
        driver.execute_cdp_cmd("Network.emulateNetworkConditions", SHAPES["unthrottled"].conditions())


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def parts(marks: dict[str, Any]) -> dict[str, float]:
    return {name: marks[end] - (marks[start] if start else 0) for name, start, end in PARTS}


def report(shape: Shape, results: list[dict[str, Any]]) -> str:
    cold, warm = results[0], results[1:] or results
    totals = [float(r["playing"]) for r in warm]
    split = [parts(r) for r in warm]
    heights = sorted({r["height"] for r in results if r["height"]})
    cells = [
        f"{shape.name:<12}",
        f"{len(warm):>4}",
        f"{statistics.median(totals):>7.0f}",
        f"{percentile(totals, 95):>7.0f}",
        f"{'yes' if percentile(totals, 95) < TARGET_MS else 'no':>5}",
        f"{cold['playing']:>7.0f}",
    ]
    for name, _, _ in PARTS:
        values = [p[name] for p in split]
        cells.append(f"{statistics.median(values):>6.0f}/{percentile(values, 95):<6.0f}")
    pages = [float(r["page"]) for r in warm]
    cells.append(f"{statistics.median(pages):>6.0f}/{percentile(pages, 95):<6.0f}")
    cells.append(" " + ",".join(f"{h}p" for h in heights))
    return " ".join(cells)


def header() -> str:
    names = " ".join(f"{name + ' p50/p95':>13}" for name, _, _ in PARTS)
    page = "page p50/p95"
    head = f"{'case':<12} {'runs':>4} {'P50 ms':>7} {'P95 ms':>7} {'<2s':>5} {'cold':>7}"
    return f"{head} {names} {page:>13}  start rung"


# --- The platform under test -------------------------------------------------------------------


def _free_port(wanted: int = 0) -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", wanted))
        return int(sock.getsockname()[1])


def prepare(work: Path, seconds: float) -> tuple[dict[str, str], str]:
    """A migrated SQLite database with one ready public 1080p video; (server env, video id)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_", "REDIS_", "AWS_", "CELERY_", "PROMETHEUS_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="settings.dev",
        DATABASE_URL=f"sqlite:///{work / 'bench.sqlite3'}",
        MEDIA_ROOT=str(work / "media"),
        VAR_DIR=str(work / "var"),
        STATIC_ROOT=str(work / "static"),
        LOG_LEVEL="WARNING",
        # A production-like server: static files from STATIC_ROOT, no debug toolbar or traces.
        DEBUG="false",
    )
    os.environ.clear()
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    from accounts.models import User
    from streaming import services, storage
    from streaming.models import MediaFile
    from videos.models import Video

    call_command("migrate", verbosity=0)
    call_command("collectstatic", "--noinput", verbosity=0)
    source = work / "source.mp4"
    subprocess.run(
        [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate=30:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", "-crf", "23", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-shortest", str(source),
        ],
        check=True,
    )  # fmt: skip
    owner, _ = User.objects.get_or_create(username="bench-playback", defaults={"email": "bench@example.com"})
    video = Video.objects.create(owner=owner, title="Playback bench", status=Video.Status.PROCESSING)
    name = storage.source_name(video.pk, "source.mp4")
    with open(source, "rb") as handle:
        storage.save_file(name, handle)
    media_file = MediaFile.objects.create(
        video=video, status=MediaFile.Status.UPLOADED, source_path=name, source_size=source.stat().st_size
    )
    services.media_file_transcode(media_file_id=media_file.pk)
    media_file.refresh_from_db()
    if media_file.status != MediaFile.Status.READY:
        raise SystemExit(f"transcode failed: {media_file.error}")
    return env, str(video.pk)


def wait_healthy(url: str, process: subprocess.Popen[Any], timeout: float, why: Callable[[], str]) -> None:
    """Polls ``url`` until it answers; exits with ``why()`` if ``process`` dies or time runs out."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit(why()) from None
            time.sleep(0.2)


@contextlib.contextmanager
def server(env: dict[str, str], work: Path, workers: int, port: int = 0) -> Iterator[str]:
    port = _free_port(port)
    log = open(work / "gunicorn.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "gunicorn"), "-c", "gunicorn.conf.py"],
        cwd=ROOT,
        env={
            **env,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "GUNICORN_WORKERS": str(workers),
            "GUNICORN_ACCESS_LOG": "/dev/null",
            "PROMETHEUS_MULTIPROC_DIR": str(work / "metrics"),
        },
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(f"{url}/health", process, 60, lambda: (work / "gunicorn.log").read_text()[-3000:])
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=20)
        if process.poll() is None:
            process.kill()
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=50, help="plays per case (after one cold play)")
    parser.add_argument("--cases", default=",".join(SHAPES), help=f"comma-separated, of {', '.join(SHAPES)}")
    parser.add_argument("--seconds", type=float, default=12.0, help="length of the generated source")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument(
        "--start",
        choices=("recommended", "lowest"),
        default="recommended",
        help="start rung: the stream endpoint's recommendation, or the lowest allowed (?start=lowest)",
    )
    parser.add_argument("--port", type=int, default=0, help="the server's port (default: any free one)")
    args = parser.parse_args()
    shapes = [SHAPES[name] for name in args.cases.split(",")]

    work = Path(tempfile.mkdtemp(prefix="vp-bench-playback-"))
    try:
        env, video_id = prepare(work, args.seconds)
        with server(env, work, args.workers, args.port) as url:
            driver = chromium_driver()
            try:
                watch = f"{url}/watch/{video_id}" + ("?start=lowest" if args.start == "lowest" else "")
                play_once(driver, watch)  # the server's first answers (imports, caches) are not a viewer's
                version = driver.capabilities.get("browserVersion")
                print(
                    f"Chromium {version}, {os.cpu_count()} CPUs, gunicorn x{args.workers}, start {args.start}"
                )
                print("times in ms from the page asking to play; parts as P50/P95; target P95 < 2000 ms")
                print(header())
                for shape in shapes:
                    results = measure(driver, watch, shape, args.runs + 1)
                    print(report(shape, results), flush=True)
            finally:
                driver.quit()
        print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
