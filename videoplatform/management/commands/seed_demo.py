"""Demo data for a newcomer: an admin, a demo user and public videos with real media.

The clips are generated with ffmpeg (test patterns and a tone; different sizes, one portrait,
one without audio), cached under ``$VAR_DIR/demo-media`` so a re-run is fast, and go through
the real pipeline: probed, stored and transcoded by the Celery worker. ``--wait`` follows the
transcoding and shows its progress. Safe to run again.
"""

from __future__ import annotations

import hashlib
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import UploadedFile
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from streaming import media_tools
from streaming import services as media_services
from streaming.models import MediaFile
from videos import intake as video_intake
from videos.models import Video

DEMO_PASSWORD = "demo-password-123"  # noqa: S105 - a public demo account, documented
CLIP_SECONDS = 4
CLIP_FPS = 24


@dataclass(frozen=True)
class DemoClip:
    title: str
    tags: tuple[str, ...]
    width: int
    height: int
    pattern: str  # an ffmpeg lavfi video source
    tone: int | None  # Hz; None: no audio track

    @property
    def description(self) -> str:
        sound = f"a {self.tone} Hz tone" if self.tone else "no audio track"
        size = f"{self.width}x{self.height}"
        return f"A generated {size} test clip ({self.pattern}), {CLIP_SECONDS} s, {sound}."

    def file_name(self) -> str:
        key = hashlib.sha1(repr((self, CLIP_SECONDS, CLIP_FPS)).encode()).hexdigest()[:10]  # noqa: S324
        return f"{self.pattern}-{self.width}x{self.height}-{key}.mp4"


DEMO_CLIPS = (
    DemoClip("Test card with a tone (720p)", ("test-pattern", "hd"), 1280, 720, "testsrc2", 440),
    DemoClip("Colour bars (480p)", ("test-pattern", "colour"), 854, 480, "smptehdbars", 1000),
    DemoClip("Portrait clip, as from a phone", ("test-pattern", "portrait"), 360, 640, "testsrc2", 660),
    DemoClip("Silent test pattern (no audio)", ("test-pattern", "silent"), 640, 360, "testsrc", None),
    DemoClip("Mandelbrot (540p)", ("fractal", "hd"), 960, 540, "mandelbrot", 330),
)


def clip_command(clip: DemoClip, path: Path) -> list[str]:
    size = f"{clip.width}x{clip.height}"
    command = [media_tools.binary("ffmpeg"), "-hide_banner", "-loglevel", "error", "-y"]
    command += ["-f", "lavfi", "-i", f"{clip.pattern}=size={size}:rate={CLIP_FPS}"]
    if clip.tone:
        command += ["-f", "lavfi", "-i", f"sine=frequency={clip.tone}:sample_rate=44100"]
    command += ["-t", str(CLIP_SECONDS), "-c:v", "libx264", "-preset", "ultrafast", "-crf", "26"]
    command += ["-pix_fmt", "yuv420p"]
    if clip.tone:
        command += ["-c:a", "aac", "-b:a", "96k"]
    return [*command, "-movflags", "+faststart", str(path)]


def make_clip(clip: DemoClip, folder: Path) -> Path:
    """The clip's file, generated once (written aside, then renamed: never half a file)."""
    path = folder / clip.file_name()
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.mp4")
    subprocess.run(clip_command(clip, partial), check=True, timeout=300)  # noqa: S603 - fixed arguments
    partial.rename(path)
    return path


class Command(BaseCommand):
    help = (
        "Create the demo users and videos with generated media (idempotent). Writes the admin "
        "password to var/demo-credentials.txt."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-media", action="store_true", help="Users only: no videos, no ffmpeg.")
        parser.add_argument(
            "--wait",
            type=float,
            default=0,
            metavar="SECONDS",
            help="Follow the transcoding for up to this long, showing progress (0: do not wait).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        demo = self._users()
        if options["no_media"]:
            return
        absent = media_tools.missing()
        if absent:
            self.stdout.write(
                f"[3/4] demo videos skipped: {media_tools.MediaToolsUnavailable(absent)}", ending="\n"
            )
            return
        videos = self._videos(demo)
        if options["wait"] > 0:
            self._wait(videos, options["wait"])

    def _users(self) -> Any:
        user_model = get_user_model()
        credentials = settings.VAR_DIR / "demo-credentials.txt"
        with transaction.atomic():
            admin = user_model._default_manager.filter(username="admin").first()
            if admin is None:
                password = secrets.token_urlsafe(12)
                user_model._default_manager.create_superuser(  # type: ignore[attr-defined]
                    username="admin", email="admin@example.com", password=password, display_name="Admin"
                )
                credentials.parent.mkdir(parents=True, exist_ok=True)
                credentials.write_text(f"username: admin\npassword: {password}\n")
                self.stdout.write(f"[1/4] admin created (password in {credentials})")
            else:
                self.stdout.write("[1/4] admin exists")
            demo = user_model._default_manager.filter(username="demo").first()
            if demo is None:
                demo = user_model._default_manager.create_user(  # type: ignore[attr-defined]
                    username="demo", email="demo@example.com", password=DEMO_PASSWORD, display_name="Demo"
                )
        self.stdout.write(f"[2/4] demo user 'demo' / '{DEMO_PASSWORD}'")
        return demo

    def _videos(self, demo: Any) -> list[Video]:
        """Each demo clip generated (or taken from the cache) and uploaded unless it already has
        media that is ready or on its way."""
        folder = Path(settings.VAR_DIR) / "demo-media"
        videos, uploaded = [], 0
        for index, clip in enumerate(DEMO_CLIPS, start=1):
            self.stdout.write(f"[3/4] demo clips {index}/{len(DEMO_CLIPS)}: {clip.title}")
            path = make_clip(clip, folder)
            video = Video.objects.filter(owner=demo, title=clip.title).first()
            media = MediaFile.objects.filter(video_id=video.pk).first() if video else None
            if video is not None and media is not None and media.status != MediaFile.Status.FAILED:
                videos.append(video)
                continue
            videos.append(self._upload(demo, clip, path, video))
            uploaded += 1
        self.stdout.write(f"      {uploaded} uploaded, {len(DEMO_CLIPS) - uploaded} already there")
        return videos

    def _upload(self, demo: Any, clip: DemoClip, path: Path, video: Video | None) -> Video:
        """The upload path of the API: probe, store, queue the transcode (on commit)."""
        with open(path, "rb") as handle:
            upload = UploadedFile(handle, name=path.name, content_type="video/mp4", size=path.stat().st_size)
            probe_result = media_services.media_probe_local(path=str(path))
            if video is None:
                return video_intake.video_create_with_upload(
                    owner=demo,
                    upload=upload,
                    probe_result=probe_result,
                    title=clip.title,
                    tags=list(clip.tags),
                    description=clip.description,
                )
            with transaction.atomic():
                media_services.media_file_attach_upload(
                    video=video, upload=upload, filename=path.name, probe_result=probe_result
                )
            return video

    def _wait(self, videos: list[Video], seconds: float) -> None:
        """Shows the transcoding progress until every demo video is ready (or failed)."""
        deadline = time.monotonic() + seconds
        tty = sys.stdout.isatty()
        titles = {video.pk: video.title for video in videos}
        last = ""
        while True:
            states = {
                row["video_id"]: row
                for row in MediaFile.objects.filter(video_id__in=list(titles)).values(
                    "video_id", "status", "progress", "error"
                )
            }
            ready = sum(1 for row in states.values() if row["status"] == MediaFile.Status.READY)
            failed = [row for row in states.values() if row["status"] == MediaFile.Status.FAILED]
            busy = [
                f"{titles[row['video_id']]} {row['progress']} %"
                for row in states.values()
                if row["status"] == MediaFile.Status.PROCESSING
            ]
            line = f"[4/4] transcoding: {ready}/{len(titles)} ready" + (f" · {busy[0]}" if busy else "")
            if line != last:
                self.stdout.write(f"\r{line:<78}" if tty else line, ending="" if tty else "\n")
                self.stdout.flush()
                last = line
            if ready + len(failed) == len(titles):
                break
            if time.monotonic() > deadline:
                self.stdout.write("")
                raise CommandError(
                    f"the demo videos were not transcoded within {seconds:.0f} s "
                    "(is the worker running? see var/log/worker.log)"
                )
            time.sleep(1)
        if tty:
            self.stdout.write("")
        for row in failed:
            self.stdout.write(f"      failed: {titles[row['video_id']]}: {row['error']}")
        if failed:
            raise CommandError(f"{len(failed)} demo video(s) could not be transcoded")
