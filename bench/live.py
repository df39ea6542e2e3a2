"""Live capacity benchmark: N concurrent broadcasters on one ingest node, passthrough and ladder.

For each mode it starts the app (gunicorn), one ingest (scripts/live-ingest.sh: nginx-rtmp and
the packager), creates N live streams, and publishes a pre-encoded source to each in real time
(``ffmpeg -re -c copy``, so the broadcasters themselves cost little). Once every session is
``live`` it samples, over ``--seconds``, the CPU time (utime+stime from /proc) and the memory
(PSS) of the ingest's processes: the nginx worker, the packager wrappers and their ffmpeg.
The broadcasters' and the app's CPU are printed beside them as the reference.

It also measures glass-to-glass latency on one stream per latency mode: a broadcaster encoding
live stamps its frames with the wall clock and flashes a white box at known wall times; the
bench times each flash when its segment becomes fetchable at the origin (plus the watch page's
hold-back: a model) and, with ``--player``, as displayed by hls.js in headless Chromium playing
the watch page through the app (the measurement).

    python bench/live.py                                   # 4 streams, 720p 3 Mb/s, 20 s per mode
    python bench/live.py --streams 10 --seconds 30 --modes passthrough
    python bench/live.py --modes "" --latency-seconds 75 --player     # latency only, as a viewer sees it

Throwaway SQLite database and folders unless DATABASE_URL is set. Prints figures; never asserts.
"""

# ruff: noqa: E501 - command lines and report rows read best on one line each
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.processes import wait_until as wait_for  # noqa: E402

VENV_BIN = Path(sys.executable).parent
SECRET = "bench-live-hook-secret"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PDT = re.compile(r"#EXT-X-PROGRAM-DATE-TIME:(\S+)")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0, help="sampling time per mode")
    parser.add_argument("--modes", default="passthrough,ladder")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--bitrate", default="3000k")
    parser.add_argument("--latency-mode", default="standard", choices=["standard", "low"])
    parser.add_argument("--latency-seconds", type=float, default=40.0, help="0: skip the latency runs")
    parser.add_argument("--latency-modes", default="standard,low")
    parser.add_argument(
        "--player",
        action="store_true",
        help="also watch each latency run in headless Chromium (the watch page)",
    )
    parser.add_argument(
        "--port-base", type=int, default=0, help="take ports from here up (else any free ones)"
    )
    return parser.parse_args()


PORTS: dict[str, int] = {"next": 0}


def free_port() -> int:
    """The next port from ``--port-base`` (a range of its own on a shared machine), else any free one."""
    if PORTS["next"]:
        PORTS["next"] += 1
        return PORTS["next"] - 1
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, b""


def make_source(path: Path, args: argparse.Namespace) -> None:
    """10 s of 2 s-GOP H.264 at the given bitrate + AAC, in FLV (what OBS would send)."""
    gop = str(args.fps * (1 if args.latency_mode == "low" else 2))
    subprocess.run(
        [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size={args.width}x{args.height}:rate={args.fps}:duration=10",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=10",
            "-c:v", "libx264", "-preset", "veryfast", "-b:v", args.bitrate, "-maxrate", args.bitrate,
            "-bufsize", args.bitrate, "-g", gop, "-keyint_min", gop, "-sc_threshold", "0",
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-f", "flv", str(path),
        ],
        check=True,
    )  # fmt: skip


# --- /proc ----------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(p) for p in handle.read().split()]
    except OSError:
        return []


def descendants(pid: int) -> list[int]:
    found = []
    for child in children(pid):
        found.append(child)
        found.extend(descendants(child))
    return found


def cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError):
        return 0.0


def pss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def command_of(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def role(pid: int) -> str:
    command = command_of(pid)
    if "packager.py" in command:
        return "packager (python)"
    if command.startswith(("ffprobe", "/usr/bin/ffprobe")):
        return "packager (ffprobe)"
    if "ffmpeg" in command.split(" ", 1)[0]:
        return "packager (ffmpeg)"
    if "nginx" in command:
        return "nginx worker"
    return "other"


def segments_of(url: str) -> dict[str, float]:
    """Segment name -> duration in a live media playlist."""
    code, body = http_get(url)
    if code != 200:
        return {}
    found, duration = {}, 0.0
    for line in body.decode().splitlines():
        if line.startswith("#EXTINF:"):
            duration = float(line[8:].split(",")[0])
        elif line and not line.startswith("#"):
            found[line] = duration
    return found


class RealTimeWatch(threading.Thread):
    """Polls playlists every second (the window slides) and adds up the media each one gained."""

    def __init__(self, urls: list[str]) -> None:
        super().__init__(daemon=True)
        self.urls = urls
        self.seen = [set(segments_of(url)) for url in urls]
        self.gained = [0.0 for _ in urls]
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(1.0):
            for index, url in enumerate(self.urls):
                for name, duration in segments_of(url).items():
                    if name not in self.seen[index]:
                        self.seen[index].add(name)
                        self.gained[index] += duration


def sample(groups: dict[str, list[int]], seconds: float) -> dict[str, dict[str, float]]:
    """CPU cores and PSS per group over ``seconds`` (pids that exist at both ends)."""
    before = {name: {pid: cpu_seconds(pid) for pid in pids} for name, pids in groups.items()}
    started = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    result = {}
    for name, pids in groups.items():
        used = sum(cpu_seconds(pid) - before[name][pid] for pid in pids if pid in before[name])
        result[name] = {
            "cores": used / elapsed,
            "pss_mb": sum(pss_mb(pid) for pid in pids),
            "count": len(pids),
        }
    return result


# --- The run --------------------------------------------------------------------------------


def start_app(work: Path, mode: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "GUNICORN_WORKERS": "2",
        "LIVE_HOOK_SECRET": SECRET,
        "LIVE_LADDER_PLANS": "free" if mode == "ladder" else "none",
        "LIVE_CONCURRENT_LIMITS": "free:100000",
        "PROMETHEUS_MULTIPROC_DIR": str(work / f"metrics-{mode}"),
    }
    (work / f"metrics-{mode}").mkdir(exist_ok=True)
    log = open(work / f"app-{mode}.log", "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [str(VENV_BIN / "gunicorn"), "-c", "gunicorn.conf.py"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    if not wait_for(lambda: http_get(f"{url}/health")[0] == 200, 60):
        raise SystemExit(f"the app did not start: {(work / f'app-{mode}.log').read_text()[-2000:]}")
    return process, url


def start_ingest(work: Path, mode: str, app_url: str) -> tuple[subprocess.Popen[bytes], int, int, Path]:
    rtmp, http = free_port(), free_port()
    directory = work / f"ingest-{mode}"
    env = {**os.environ, "LIVE_HOOK_SECRET": SECRET}
    log = open(work / f"ingest-{mode}.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        ["bash", str(ROOT / "scripts/live-ingest.sh"), "--rtmp-port", str(rtmp), "--http-port", str(http),
         "--hooks-url", f"{app_url}/internal/live/hooks", "--dir", str(directory)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    if not wait_for(lambda: http_get(f"http://127.0.0.1:{http}/healthz")[0] == 200, 30):
        raise SystemExit("the ingest did not start")
    return process, rtmp, http, directory


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# The broadcaster flashes a white box every FLASH_PERIOD s of wall-clock time, its width telling
# which of FLASH_KINDS flashes it is (a quarter, half... of the frame), so that a flash seen up
# to FLASH_PERIOD * FLASH_KINDS s later is matched to the right capture time.
FLASH_PERIOD = 5.0
FLASH_KINDS = 4
FLASH_CYCLE = FLASH_PERIOD * FLASH_KINDS
# hls.js's hold-back on the watch page (streaming/static/streaming/watch.js: LIVE_SYNC), in
# target durations; hls.js's own default is 3.
HOLD_BACK = {"standard": 3, "low": 2}
SETTLE_SECONDS = 15.0  # of playback, before the "settled" figures


def broadcaster_filter(epoch: float) -> str:
    """Frames stamped with the wall clock (microseconds since ``epoch``) when they are made, and
    a white box of width (k + 1) / 4 for 0.5 s from ``epoch + FLASH_PERIOD * (4 m + k)``."""
    stamps = f"settb=AVTB,setpts='RTCTIME-{int(epoch * 1e6)}'"
    boxes = [
        f"drawbox=x=0:y=0:w=iw*{k + 1}/{FLASH_KINDS}:h=ih:color=white:t=fill:"
        f"enable='between(mod(t,{FLASH_CYCLE}),{k * FLASH_PERIOD},{k * FLASH_PERIOD + 0.5})'"
        for k in range(FLASH_KINDS)
    ]
    return ",".join([stamps, *boxes])


def flash_kind(level: float) -> int:
    """Which flash (0..3) from the lit fraction of the picture (0..1)."""
    return min(FLASH_KINDS - 1, max(0, round(level * FLASH_KINDS) - 1))


def captured_at(epoch: float, kind: int, seen: float) -> float:
    """The wall time flash ``kind`` was made, for a flash seen at ``seen``: the latest one before."""
    offset = epoch + kind * FLASH_PERIOD
    return offset + FLASH_CYCLE * ((seen - offset) // FLASH_CYCLE)


def edges(segment: bytes, work: Path) -> tuple[list[tuple[float, int]], float]:
    """(media time, segment-relative; flash kind) where the picture turns white, and the
    segment's length."""
    path = work / "probe.ts"
    path.write_bytes(segment)
    out = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:v:0", "-vf",
         "signalstats,metadata=print:key=lavfi.signalstats.YAVG:file=-", "-f", "null", "-"],
        capture_output=True, text=True, timeout=30,
    ).stdout  # fmt: skip
    times, levels = [], []
    for line in out.splitlines():
        if line.startswith("frame:"):
            times.append(float(line.rsplit("pts_time:", 1)[1]))
        elif "YAVG=" in line:
            levels.append((float(line.split("=", 1)[1]) - 16) / 219)  # limited range: black 16, white 235
    if not times:
        return [], 0.0
    start, step = times[0], (times[-1] - times[0]) / max(1, len(times) - 1)
    found = []
    for i, (t, level) in enumerate(zip(times, levels, strict=False)):
        if level > 0.1 and (i == 0 or levels[i - 1] <= 0.1):
            # The first lit frame may be blended by the encoder: its kind from the next frame.
            steady = levels[min(i + 1, len(levels) - 1)]
            found.append((t - start, flash_kind(max(level, steady))))
    return found, times[-1] - start + step


# Injected into the watch page: for every frame shown, the mean red level of an 32x18 copy; a
# dark-to-lit change is a flash, recorded with the wall time the frame was to be displayed.
FLASH_WATCHER = """
var video = document.getElementById('video');
var canvas = document.createElement('canvas'); canvas.width = 32; canvas.height = 18;
var g = canvas.getContext('2d', {willReadFrequently: true});
var lit = false;
window.benchFlashes = [];
function onFrame(now, meta) {
  g.drawImage(video, 0, 0, 32, 18);
  var d = g.getImageData(0, 0, 32, 18).data, sum = 0;
  for (var i = 0; i < d.length; i += 4) { sum += d[i]; }
  var level = sum / (d.length / 4) / 255;
  if (level > 0.1 && !lit) {
    window.benchFlashes.push({at: performance.timeOrigin + (meta.expectedDisplayTime || now), level: level,
                              latency: window.videoplatformPlayer.hls ? window.videoplatformPlayer.hls.latency : null});
  } else if (lit && window.benchFlashes.length) {
    var last = window.benchFlashes[window.benchFlashes.length - 1];
    last.level = Math.max(last.level, level);
  }
  lit = level > 0.1;
  video.requestVideoFrameCallback(onFrame);
}
video.requestVideoFrameCallback(onFrame);
"""


def watch_in_chromium(url: str, epoch: float, seconds: float) -> dict[str, Any]:
    """Plays the live watch page in headless Chromium for ``seconds``; glass-to-glass per flash
    (display time minus capture time) and hls.js's own latency estimate."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--autoplay-policy=no-user-gesture-required", "--mute-audio"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(
        service=Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver"),
        options=options,
    )
    try:
        driver.get(url)
        if not wait_for(
            lambda: driver.execute_script("return document.getElementById('video').currentTime") > 1, 60
        ):
            return {"samples": [], "settled": [], "hls_latency": [], "stalls": None}
        playing_at = time.time()
        driver.execute_script(FLASH_WATCHER)
        time.sleep(seconds)
        flashes = driver.execute_script("return window.benchFlashes")
        stalls = driver.execute_script(
            "return window.videoplatformPlayer.sent.filter(e => e.type === 'rebuffer').length"
        )
    finally:
        driver.quit()
    samples = [
        flash["at"] / 1000 - captured_at(epoch, flash_kind(flash["level"]), flash["at"] / 1000)
        for flash in flashes
    ]
    hls_latency = [float(f["latency"]) for f in flashes if f.get("latency") is not None]
    # Once the player has settled: past its start-up (where it started and how long the first
    # segments took to come decide the latency until hls.js has caught up or jumped).
    settled = [
        value
        for value, flash in zip(samples, flashes, strict=True)
        if flash["at"] / 1000 >= playing_at + SETTLE_SECONDS
    ]
    return {"samples": samples, "settled": settled, "hls_latency": hls_latency, "stalls": stalls}


def measure_latency(
    args: argparse.Namespace, work: Path, mode: str, latency_mode: str, seconds: float
) -> dict[str, Any]:
    """Glass-to-glass on one passthrough stream. A broadcaster encoding live (x264 zerolatency,
    a keyframe per segment) stamps its frames with the wall clock and flashes a white box at
    known wall times (``broadcaster_filter``). The bench polls the media playlist at the origin,
    decodes each new segment, and takes, for each flash, the time its segment became fetchable
    minus its capture time, then adds the watch page's hold-back (HOLD_BACK target durations):
    the model. With ``--player`` it also plays the watch page in headless Chromium and times
    each flash as displayed: the measurement."""
    from django.contrib.auth import get_user_model

    from streaming.live import services
    from streaming.live.models import LiveSession

    app, app_url = start_app(work, mode)
    ingest, rtmp_port, http_port, _directory = start_ingest(work, f"{mode}-{latency_mode}", app_url)
    gop = args.fps * (1 if latency_mode == "low" else 2)
    user = get_user_model().objects.create_user(
        username=f"lat-{time.time_ns()}",
        email=f"lat-{time.time_ns()}@example.com",
        password="x",
    )
    stream, key = services.live_stream_create(
        owner=user, title="latency", latency_mode=latency_mode, record=False
    )
    epoch = float(int(time.time()))
    publisher = subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
         "-f", "lavfi", "-i", f"color=c=black:s=640x360:r={args.fps}",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
         "-vf", broadcaster_filter(epoch),
         "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", str(gop), "-keyint_min", str(gop),
         "-sc_threshold", "0", "-b:v", "800k", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k",
         "-f", "flv", f"rtmp://127.0.0.1:{rtmp_port}/live/{key}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    availability: list[float] = []
    target = 2.0
    player: dict[str, Any] = {}
    try:
        wait_for(lambda: LiveSession.objects.filter(stream_id=stream.pk, status="live").exists(), 30)
        session = LiveSession.objects.get(stream_id=stream.pk)
        watcher = None
        if args.player:  # beside the polling below, for the same broadcast
            watcher = threading.Thread(
                target=lambda: player.update(
                    watch_in_chromium(f"{app_url}/watch/live/{stream.pk}", epoch, seconds)
                ),
                daemon=True,
            )
            watcher.start()
        url = f"http://127.0.0.1:{http_port}/live/{session.pk}/src/index.m3u8"
        seen: set[str] = set()
        first = True
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            code, body = http_get(url)
            now = time.time()
            if code == 200:
                text = body.decode()
                match = re.search(r"#EXT-X-TARGETDURATION:(\d+)", text)
                target = float(match.group(1)) if match else target
                names = [line for line in text.splitlines() if line and not line.startswith("#")]
                for name in names:
                    if name in seen:
                        continue
                    seen.add(name)
                    if first:
                        continue  # segments already there when polling began: not timed
                    status, segment = http_get(url.rsplit("/", 1)[0] + "/" + name)
                    if status != 200:
                        continue
                    found, length = edges(segment, work)
                    for offset, kind in found:
                        last_frame = now - (length - offset)  # no later than when the flash's segment ended
                        captured = captured_at(epoch, kind, last_frame)
                        availability.append(now - captured - (length - offset))  # of the segment's last frame
                first = False
            time.sleep(0.05)
        if watcher is not None:
            watcher.join(90)
    finally:
        stop(publisher, signal.SIGINT)
        stop(ingest)
        stop(app)
    return {"availability": availability, "target": target, "player": player}


def percentiles(values: list[float]) -> str:
    if not values:
        return "no samples"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return (
        f"P50 {statistics.median(ordered):.2f} s, P95 {p95:.2f} s, "
        f"min {ordered[0]:.2f} s, max {ordered[-1]:.2f} s ({len(ordered)} samples)"
    )


def run_mode(mode: str, args: argparse.Namespace, work: Path, source: Path) -> dict[str, Any]:
    from django.contrib.auth import get_user_model

    from streaming.live import services
    from streaming.live.models import LiveSession

    app, app_url = start_app(work, mode)
    ingest, rtmp_port, _http_port, directory = start_ingest(work, mode, app_url)
    publishers = []
    try:
        user = get_user_model().objects.create_user(
            username=f"bench-{mode}-{time.time_ns()}",
            email=f"bench-{time.time_ns()}@example.com",
            password="x",
        )
        keys = []
        for index in range(args.streams):
            stream, key = services.live_stream_create(
                owner=user, title=f"bench {mode} {index}", latency_mode=args.latency_mode, record=False
            )
            keys.append((stream.pk, key))
        for _stream_id, key in keys:
            publishers.append(
                subprocess.Popen(
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
                        str(source),
                        "-c",
                        "copy",
                        "-f",
                        "flv",
                        f"rtmp://127.0.0.1:{rtmp_port}/live/{key}",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            time.sleep(0.3)  # spread the start-ups (probing, the first keyframe)
        stream_ids = [stream_id for stream_id, _ in keys]
        live = lambda: LiveSession.objects.filter(stream_id__in=stream_ids, status="live").count()  # noqa: E731
        if not wait_for(lambda: live() == len(keys), 60 + 5 * len(keys), 1.0):
            print(f"  only {live()} of {len(keys)} sessions went live")
        time.sleep(4)  # past the start-ups
        nginx_master = int((directory / "nginx.pid").read_text())
        workers = children(nginx_master)
        ingest_pids = [pid for worker in workers for pid in [worker, *descendants(worker)]]
        groups: dict[str, list[int]] = {}
        for pid in ingest_pids:
            groups.setdefault(role(pid), []).append(pid)
        groups["broadcasters (reference)"] = [p.pid for p in publishers]
        groups["app: gunicorn (hooks)"] = [app.pid, *descendants(app.pid)]
        session = LiveSession.objects.filter(stream_id=stream_ids[0]).first()
        # Real time check: media seconds each packager wrote (its lowest rendition) per wall second.
        playlists = [
            f"http://127.0.0.1:{_http_port}/live/{s.pk}/{s.renditions[-1]['name']}/index.m3u8"
            for s in LiveSession.objects.filter(stream_id__in=stream_ids, status="live")
            if s.renditions
        ]
        watch = RealTimeWatch(playlists)
        watch.start()
        started = time.monotonic()
        figures = sample(groups, args.seconds)
        watch.done.set()
        watch.join()
        elapsed = time.monotonic() - started
        ratios = [gained / elapsed for gained in watch.gained]
        renditions = session.renditions if session else []
        return {"figures": figures, "renditions": renditions, "live": live(), "realtime": ratios}
    finally:
        for publisher in publishers:
            stop(publisher, signal.SIGINT)
        time.sleep(3)  # the recordings' uploads (refused: record is off) before the app stops
        stop(ingest)
        stop(app)


def main() -> None:
    args = parse_args()
    PORTS["next"] = args.port_base
    work = Path(tempfile.mkdtemp(prefix="vp-bench-live-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.dev")
    os.environ["MEDIA_ROOT"] = str(work / "media")
    os.environ["VAR_DIR"] = str(work / "var")
    os.environ["LOG_LEVEL"] = "WARNING"
    if "DATABASE_URL" not in os.environ:
        os.environ["DATABASE_URL"] = f"sqlite:///{work / 'bench.sqlite3'}"
    import django

    django.setup()
    from django.core.management import call_command

    if os.environ["DATABASE_URL"].startswith("sqlite:///" + str(work)):
        call_command("migrate", verbosity=0)
    source = work / "source.flv"
    make_source(source, args)
    print(
        f"live bench: {args.streams} streams of {args.width}x{args.height}@{args.fps} {args.bitrate}, "
        f"{args.latency_mode} latency, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}"
    )
    report: dict[str, Any] = {}
    for mode in [name for name in args.modes.split(",") if name]:
        result = run_mode(mode, args, work, source)
        report[mode] = result
        live = result["live"] or 1
        print(f"\n== {mode}: {result['live']} live; renditions {[r['name'] for r in result['renditions']]}")
        print(
            f"  {'process group':28} {'n':>3} {'cores':>7} {'cores/stream':>13} {'PSS MB':>8} {'MB/stream':>10}"
        )
        ingest_cores = ingest_mb = 0.0
        for name, figure in sorted(result["figures"].items()):
            print(
                f"  {name:28} {figure['count']:>3} {figure['cores']:>7.3f} {figure['cores'] / live:>13.4f} "
                f"{figure['pss_mb']:>8.1f} {figure['pss_mb'] / live:>10.1f}"
            )
            if not name.startswith(("broadcasters", "app")):
                ingest_cores += figure["cores"]
                ingest_mb += figure["pss_mb"]
        print(
            f"  {'ingest total':28} {'':>3} {ingest_cores:>7.3f} {ingest_cores / live:>13.4f} {ingest_mb:>8.1f} {ingest_mb / live:>10.1f}"
        )
        result["ingest_cores_per_stream"] = ingest_cores / live
        if result["realtime"]:
            ratios = result["realtime"]
            mean = statistics.mean(ratios)
            print(
                f"  real time: media written per wall second, per stream: min {min(ratios):.2f}, mean {mean:.2f} "
                "(below 1 the node could not keep up and the CPU figures read low)"
            )
            if mean > 0:
                result["ingest_cores_per_stream_realtime"] = ingest_cores / live / min(1.0, mean)
                print(
                    f"  ingest cores per stream at real time (cores / mean ratio): {result['ingest_cores_per_stream_realtime']:.4f}"
                )
        result["ingest_mb_per_stream"] = ingest_mb / live

    if args.latency_seconds > 0 and args.latency_modes:
        print(
            "\n== glass-to-glass latency (one passthrough stream, a keyframe per segment; capture → segment"
            " fetchable at the origin + the watch page's hold-back; with --player: as displayed by hls.js in Chromium)"
        )
        for latency_mode in args.latency_modes.split(","):
            measured = measure_latency(args, work, "latency", latency_mode, args.latency_seconds)
            report[f"latency-{latency_mode}"] = measured
            hold = HOLD_BACK[latency_mode] * measured["target"]
            rows = [
                ("segment fetchable", measured["availability"]),
                (f"model: + hold-back {hold:.0f} s", [v + hold for v in measured["availability"]]),
            ]
            if measured["player"]:
                rows.append(("player (Chromium, hls.js)", measured["player"]["samples"]))
                rows.append(
                    (f"player after {SETTLE_SECONDS:.0f} s of playback", measured["player"]["settled"])
                )
                rows.append(("hls.js's own latency estimate", measured["player"]["hls_latency"]))
            print(f"  {latency_mode} ({measured['target']:.0f} s segments):")
            for label, values in rows:
                print(f"    {label:32} {percentiles(values)}")
            if measured["player"]:
                print(f"    {'player stalls (rebuffers)':32} {measured['player']['stalls']}")
        print(f"  load average after: {os.getloadavg()[0]:.2f}")
    usable = 1.4
    report = {mode: result for mode, result in report.items() if "ingest_cores_per_stream" in result} | {
        key: value for key, value in report.items() if key.startswith("latency")
    }
    print("\n== capacity model for 10,000 concurrent streams (1.4 usable cores per 2-core node)")
    for mode, result in report.items():
        per_stream = result.get("ingest_cores_per_stream_realtime", result.get("ingest_cores_per_stream", 0))
        if per_stream > 0:
            per_node = usable / per_stream
            print(
                f"  {mode:12} {per_stream:.4f} cores/stream → {per_node:.0f} streams per node → {10_000 / per_node:,.0f} nodes"
            )
    (work / "report.json").write_text(json.dumps(report, default=str, indent=1))
    print(f"\nraw figures: {work / 'report.json'}")


if __name__ == "__main__":
    main()
