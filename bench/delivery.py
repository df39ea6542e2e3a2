"""Delivery: how many concurrent viewers the origin holds per core, without a stall.

Simulated viewers play one video the way a player does: the stream endpoint (signed URLs), the
master playlist, the 480p media playlist, then each segment on its real schedule (segment k is
asked for when the playhead is one segment before it, i.e. every segment-duration once the first
two 1 s segments are in). A **stall** is a segment that arrives after the moment it was due on
screen. Viewers start spread over the first 4 s and loop over the video.

Two set-ups, each stepped through increasing viewer counts:

    origin   the app's signed media view under gunicorn (the embedded default's delivery), every
             request reaching Django
    edge     nginx in front (proxy_cache keyed by the path, cache lock on: a CDN edge with its
             origin shield in miniature), following the app's Cache-Control

For each step it prints the requests and megabits per second, stalls, segment time P50/P95, the
CPU the server processes used (cores, from /proc) and viewers per core; for the edge, its hit
ratio and the origin's share. The host's load average is printed: on a shared machine read the
CPU figures (per viewer, per request), not the wall-clock limits.

    python bench/delivery.py                          # origin and edge, 50/100/200/400 viewers, 25 s each
    python bench/delivery.py --viewers 100,300 --seconds 20 --modes edge

Needs ffmpeg and nginx. It never asserts timings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.playback import percentile, prepare, server, wait_healthy  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
BANDWIDTH = 1_500_000  # what each viewer reports: the bandwidth rule picks 480p


@dataclass
class Step:
    viewers: int
    requests: int = 0
    bytes: int = 0
    stalls: int = 0
    errors: int = 0
    segment_ms: list[float] = field(default_factory=list)


def _process_tree(root_pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                parent = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found, stack = [], [root_pid]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def cpu_seconds(root_pid: int) -> float:
    """User + system CPU seconds of a process and its children alive now."""
    total = 0
    for pid in _process_tree(root_pid):
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            continue
    return total / CLOCK_TICKS


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def _gunicorn_pid(port: int) -> int:
    """The gunicorn master serving ``port`` (started by bench.playback.server)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                args = handle.read().split(b"\0")
            with open(f"/proc/{entry}/environ", "rb") as handle:
                env = handle.read().split(b"\0")
        except OSError:
            continue
        if any(a.endswith(b"gunicorn") for a in args) and f"PORT={port}".encode() in env:
            parent = int(_read(f"/proc/{entry}/stat").rsplit(b")", 1)[1].split()[1])
            if parent != 0 and b"gunicorn" not in _read(f"/proc/{parent}/cmdline"):
                return int(entry)
    raise SystemExit("gunicorn not found")


# --- nginx in front ----------------------------------------------------------------------------

NGINX_CONF = """
{user}
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 8192; }}
http {{
    log_format cache '$upstream_cache_status $status $body_bytes_sent $uri';
    access_log {work}/nginx-access.log cache;
    client_body_temp_path {work}/nginx-body;
    proxy_temp_path {work}/nginx-proxy;
    fastcgi_temp_path {work}/nginx-fastcgi;
    uwsgi_temp_path {work}/nginx-uwsgi;
    scgi_temp_path {work}/nginx-scgi;
    proxy_cache_path {work}/nginx-cache levels=1:2 keys_zone=media:20m max_size=4g inactive=1h
                     use_temp_path=off;
    upstream app {{ server 127.0.0.1:{app_port}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $http_host;
        location /media/s/ {{
            proxy_pass http://app;
            proxy_cache media;
            proxy_cache_key $uri;          # the token is in the path; no query, cookie or header
            proxy_cache_lock on;           # concurrent misses: one request to the origin
            proxy_cache_use_stale updating;
            add_header X-Cache $upstream_cache_status;
        }}
        location / {{
            proxy_pass http://app;
        }}
    }}
}}
"""


@contextlib.contextmanager
def nginx(work: Path, app_url: str, port: int) -> Iterator[tuple[str, int]]:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    conf = work / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            work=work,
            app_port=app_url.rsplit(":", 1)[1],
            port=port,
            user="user root;" if os.geteuid() == 0 else "",
        )
    )
    log = work / "nginx-start.log"
    process = subprocess.Popen(
        [binary, "-c", str(conf), "-g", "daemon off;"],
        stderr=log.open("wb"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(f"{url}/health", process, 20, lambda: f"nginx did not start: {log.read_text()}")
        yield url, process.pid
    finally:
        process.send_signal(signal.SIGQUIT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        if process.poll() is None:
            process.kill()


def cache_counts(work: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    log = work / "nginx-access.log"
    if log.exists():
        for line in log.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 4 and parts[3].startswith("/media/s/"):
                counts[parts[0]] = counts.get(parts[0], 0) + 1
    return counts


# --- viewers -----------------------------------------------------------------------------------


def _playlist(text: str) -> list[tuple[float, str]]:
    entries, duration = [], 0.0
    for line in text.splitlines():
        if line.startswith("#EXTINF:"):
            duration = float(line.split(":", 1)[1].rstrip(","))
        elif line and not line.startswith("#"):
            entries.append((duration, line))
    return entries


async def viewer(client: Any, base: str, video_id: str, step: Step, delay: float, until: float) -> None:
    await asyncio.sleep(delay)
    try:
        answer = await client.get(f"{base}/api/videos/{video_id}/stream", params={"bandwidth": BANDWIDTH})
        step.requests += 1
        if answer.status_code != 200:
            step.errors += 1
            return
        stream = answer.json()
        master = await client.get(stream["master_playlist_url"])
        url = stream["recommended_rendition"]["url"]
        media = await client.get(url)
    except Exception:  # noqa: BLE001 - a refused or dropped connection is an error of the step
        step.errors += 1
        return
    step.requests += 2
    if master.status_code != 200 or media.status_code != 200:
        step.errors += 1
        return
    segments = _playlist(media.text)
    folder = url.rsplit("/", 1)[0]
    # The playhead starts when the first segment is in; segment k is asked for one segment
    # before it is due on screen (a player keeping one segment ahead), and is late (a stall)
    # if it arrives after it was due.
    loop = asyncio.get_running_loop()
    playhead_start: float | None = None
    position = 0.0  # seconds of video before the segment being fetched
    index = 0
    while loop.time() < until:
        duration, name = segments[index % len(segments)]
        if playhead_start is not None:
            ask_at = playhead_start + position - duration
            if ask_at > loop.time():
                await asyncio.sleep(ask_at - loop.time())
        began = loop.time()
        try:
            response = await client.get(f"{folder}/{name}")
            body = response.content
        except Exception:  # noqa: BLE001 - a failed fetch is an error of the step, never a crash
            step.errors += 1
            return
        done = loop.time()
        step.requests += 1
        step.bytes += len(body)
        step.segment_ms.append((done - began) * 1000)
        if response.status_code != 200:
            step.errors += 1
        if playhead_start is None:
            playhead_start = done
        elif done > playhead_start + position:
            step.stalls += 1
            playhead_start += done - (playhead_start + position)  # the stall delays what follows
        position += duration
        index += 1


async def run_step(base: str, video_id: str, viewers: int, seconds: float) -> Step:
    import httpx

    step = Step(viewers)
    limits = httpx.Limits(max_connections=viewers + 10, max_keepalive_connections=viewers + 10)
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:
        until = asyncio.get_running_loop().time() + seconds
        await asyncio.gather(
            *(viewer(client, base, video_id, step, 4.0 * i / viewers, until) for i in range(viewers))
        )
    return step


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--viewers", default="50,100,200,400", help="viewer counts, stepped through")
    parser.add_argument("--seconds", type=float, default=25.0, help="length of each step")
    parser.add_argument("--modes", default="origin,edge")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--source-seconds", type=float, default=12.0, help="length of the generated video")
    parser.add_argument("--port", type=int, default=0, help="the app's port (nginx takes the next one)")
    args = parser.parse_args()
    counts = [int(n) for n in args.viewers.split(",")]

    work = Path(tempfile.mkdtemp(prefix="vp-bench-delivery-"))
    try:
        env, video_id = prepare(work, args.source_seconds)
        env["API_THROTTLE_ANON_RATE"] = "off"  # every simulated viewer comes from one address
        with server(env, work, args.workers, args.port) as app_url:
            app_pid = _gunicorn_pid(int(app_url.rsplit(":", 1)[1]))
            print(
                f"{os.cpu_count()} CPUs, gunicorn x{args.workers}, "
                f"{args.seconds:.0f} s per step, 480p viewers"
            )
            print(
                f"{'mode':<7} {'viewers':>7} {'req/s':>7} {'Mb/s':>7} {'stalls':>6} {'errors':>6} "
                f"{'seg p50/p95 ms':>15} {'app cores':>9} {'edge cores':>10} {'viewers/core':>12} "
                f"{'hit ratio':>9} {'load':>5}"
            )
            for mode in args.modes.split(","):
                edge_port = (args.port + 1) if args.port else 0
                with contextlib.ExitStack() as stack:
                    base, edge_pid = app_url, None
                    if mode == "edge":
                        base, edge_pid = stack.enter_context(
                            nginx(work, app_url, edge_port or int(app_url.rsplit(":", 1)[1]) + 1)
                        )
                    for viewers in counts:
                        before_app = cpu_seconds(app_pid)
                        before_edge = cpu_seconds(edge_pid) if edge_pid else 0.0
                        cache_before = cache_counts(work) if edge_pid else {}
                        began = time.monotonic()
                        step = asyncio.run(run_step(base, video_id, viewers, args.seconds))
                        wall = time.monotonic() - began
                        app_cores = (cpu_seconds(app_pid) - before_app) / wall
                        edge_cores = ((cpu_seconds(edge_pid) - before_edge) / wall) if edge_pid else 0.0
                        cache_after = cache_counts(work) if edge_pid else {}
                        hits = cache_after.get("HIT", 0) - cache_before.get("HIT", 0)
                        served = sum(cache_after.values()) - sum(cache_before.values())
                        cores = app_cores + edge_cores
                        seg = step.segment_ms or [0.0]
                        print(
                            f"{mode:<7} {viewers:>7} {step.requests / wall:>7.1f} "
                            f"{step.bytes * 8 / wall / 1e6:>7.1f} {step.stalls:>6} {step.errors:>6} "
                            f"{statistics.median(seg):>7.0f}/{percentile(seg, 95):<7.0f} "
                            f"{app_cores:>9.3f} {edge_cores:>10.3f} {viewers / cores if cores else 0:>12.0f} "
                            f"{(hits / served if served else 0):>9.3f} {os.getloadavg()[0]:>5.1f}",
                            flush=True,
                        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
