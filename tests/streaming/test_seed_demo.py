"""The demo data: users, and five videos whose generated clips go through the upload pipeline
(probed, stored, queued); cached clips make a re-run quick, and nothing is uploaded twice."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from streaming.models import MediaFile
from videos.models import Video

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def _seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def test_demo_videos_have_real_media_and_a_rerun_uploads_nothing(settings, tmp_path: Path):
    settings.VAR_DIR = tmp_path
    output = _seed()
    assert "5 uploaded, 0 already there" in output, output
    media = MediaFile.objects.filter(video__owner__username="demo")
    assert media.count() == 5
    # Probed as an upload is: stored and waiting for the worker, with the clip's measurements.
    assert {m.status for m in media} == {MediaFile.Status.UPLOADED}
    sizes = {(m.width, m.height) for m in media}
    assert sizes == {(1280, 720), (854, 480), (360, 640), (640, 360), (960, 540)}
    assert [m.audio_codec for m in media].count("") == 1
    assert all(3.5 < (m.duration or 0) < 4.5 for m in media)
    assert set(Video.objects.filter(owner__username="demo").values_list("status", flat=True)) == {
        Video.Status.PROCESSING
    }

    clips = sorted((tmp_path / "demo-media").glob("*.mp4"))
    assert len(clips) == 5
    made = {clip: clip.stat().st_mtime_ns for clip in clips}
    again = _seed()
    assert "0 uploaded, 5 already there" in again, again
    assert {clip: clip.stat().st_mtime_ns for clip in clips} == made  # taken from the cache
    assert MediaFile.objects.filter(video__owner__username="demo").count() == 5


def test_without_ffmpeg_the_users_are_made_and_the_videos_skipped_with_the_reason(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.FFMPEG_BINARY = "/nonexistent/bin/ffmpeg"
    output = _seed()
    assert "demo videos skipped: ffmpeg is not installed" in output, output
    assert not Video.objects.filter(owner__username="demo").exists()
    assert (tmp_path / "demo-credentials.txt").exists()
