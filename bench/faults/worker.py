"""A Celery transcoding worker killed with SIGKILL mid-transcode (master and pool at once, as a
node loss would), while the web load runs. A new worker is started; the job must complete with
exactly one set of renditions and no orphaned files.

With the Redis broker, a message whose worker vanished is handed out again once its lease has
not been renewed for the visibility timeout (CELERY_VISIBILITY_TIMEOUT, 300 s as shipped; a live
worker renews its messages, so long transcodes are never run twice). ``--visibility-timeout``
sets it for the run.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.faults.run import Outcome, acknowledged_missing
from bench.faults.stack import Gunicorn, Stack, pg_connect, stack
from bench.loadgen import LoadGenerator, seed_users, seed_videos
from tests.support.processes import ROOT, VENV_BIN, wait_until


class Worker:
    """``celery worker -Q transcoding -c 1`` in a session of its own (killed as a whole)."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [
                    str(VENV_BIN / "celery"), "-A", "videoplatform", "worker", "-Q", "transcoding",
                    "--concurrency", "1", "--prefetch-multiplier", "1", "-O", "fair",
                    "--without-gossip", "--without-mingle", "-l", "info",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def kill(self) -> None:
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
            self.process = None


def make_clip(folder: Path, seconds: int) -> Path:
    """A 720p clip long enough to be caught in the middle of its transcode."""
    path = folder / "fault-clip.mp4"
    subprocess.run(
        [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=24:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", "-crf", "30", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "64k", "-shortest", str(path),
        ],
        check=True,
        timeout=300,
    )  # fmt: skip
    return path


def media_state(built: Stack, video_id: str) -> dict[str, Any]:
    with pg_connect(built.primary.port) as conn:
        row = conn.execute(
            "SELECT id, status, progress, attempts, run_token, error FROM streaming_mediafile "
            "WHERE video_id = %s",
            (video_id,),
        ).fetchone()
        if row is None:
            return {}
        qualities = [
            r[0]
            for r in conn.execute(
                "SELECT quality FROM streaming_rendition WHERE media_file_id = %s ORDER BY quality DESC",
                (row[0],),
            )
        ]
    keys = ("id", "status", "progress", "attempts", "run_token", "error")
    return {**dict(zip(keys, row, strict=True)), "renditions": qualities}


def fault_worker(args: argparse.Namespace) -> Outcome:
    extra = {"CELERY_VISIBILITY_TIMEOUT": str(args.visibility_timeout), "TRANSCODE_PROGRESS_INTERVAL": "0.5"}
    with stack(standby=True, pgbouncer=True, template_url=args.template_url, **extra) as built:
        server = Gunicorn(built.app_env(), workers=2)
        server.start()
        log = built.work / "worker.log"
        worker = Worker(built.app_env(), log)
        replacement = Worker(built.app_env(), log)
        try:
            users = seed_users(server.url, count=3, prefix="worker")
            videos = seed_videos(server.url, users, per_user=2)
            worker.start()
            load = LoadGenerator(server.url, users=users, video_ids=videos, threads=args.threads)
            load.start(duration=args.wait + 600)
            with tempfile.TemporaryDirectory() as folder:
                clip = make_clip(Path(folder), args.clip_seconds)
                with open(clip, "rb") as handle:
                    response = httpx.post(
                        f"{server.url}/api/videos/create",
                        data={"title": "killed mid-transcode"},
                        files={"file": ("clip.mp4", handle, "video/mp4")},
                        headers={"Authorization": f"Bearer {users[0].token}"},
                        timeout=120,
                    )
            response.raise_for_status()
            video_id = response.json()["id"]
            started = wait_until(lambda: media_state(built, video_id).get("progress", 0) >= 5, timeout=300)
            before = media_state(built, video_id)
            fault_at = load.now()
            worker.kill()
            time.sleep(2)
            replacement.start()
            recovered_at = load.now()
            finished = wait_until(
                lambda: media_state(built, video_id)["status"] in ("ready", "failed"),
                timeout=args.wait,
                interval=1,
            )
            done_at = load.now()
            report = load.stop()
            after = media_state(built, video_id)
        finally:
            worker.kill()
            replacement.stop()
            server.destroy()

        outcome = Outcome(name="worker", report=report, fault_at=fault_at, recovered_at=recovered_at)
        outcome.check(started, "the transcode never started")
        outcome.notes["killed at progress"] = f"{before.get('progress')} % (run {before.get('run_token')})"
        outcome.notes["job after restart"] = (
            f"{after['status']} after {done_at - recovered_at:.1f} s, attempts {after['attempts']}, "
            f"renditions {after['renditions']}"
        )
        outcome.check(finished and after["status"] == "ready", f"the job did not complete: {after}")
        outcome.check(len(after["renditions"]) == len(set(after["renditions"])) > 0, "not exactly one set")
        hls = built.media_root / "videos" / video_id / "hls"
        runs = sorted(os.listdir(hls)) if hls.exists() else []
        outcome.notes["output runs in storage"] = runs
        outcome.check(runs == [after["run_token"]], f"output folders other than the final run's: {runs}")
        work = built.media_root / ".work"
        leftovers = [str(p) for p in work.rglob("*")] if work.exists() else []
        leftovers += built.leftover_files()
        outcome.notes["orphaned temp files"] = len(leftovers)
        outcome.check(not leftovers, f"orphaned temporary files: {leftovers[:5]}")
        missing = acknowledged_missing(built, report.acknowledged_writes)
        outcome.check(not missing, f"acknowledged writes missing: {missing[:5]}")
        outcome.check(not report.failures, f"{report.failed} web requests failed")
        return outcome
