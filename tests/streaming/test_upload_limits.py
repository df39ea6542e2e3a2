"""What one upload may cost: a video longer than MEDIA_MAX_DURATION is refused (422
``video_too_long``) whatever its size, as its container declares it and as its packets span,
and the transcode's time limit follows the span measured by a demux pass, not the header."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from streaming import probe, services
from streaming.models import MediaFile
from tests.factories import VideoFactory
from videos.models import Video

pytestmark = pytest.mark.django_db
SPARSE_COMMAND = (
    *("ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=1"),
    *("-frames:v", "2", "-vf", "setpts=N*3600/TB", "-fps_mode", "passthrough"),
    *("-c:v", "libx264", "-preset", "ultrafast"),
)


@pytest.fixture(scope="session")
def sparse_clip(clips_dir: Path) -> Path:
    """46 KB-style trick: two frames an hour apart (a one-hour "video" of a few kilobytes)."""
    path = clips_dir / "sparse-hour.mp4"
    if not path.exists():
        subprocess.run(
            [*SPARSE_COMMAND, str(path)],
            check=True,
            timeout=60,
        )
    return path


def test_the_demux_pass_measures_what_the_packets_span(sparse_clip, clip):
    assert sparse_clip.stat().st_size < 50_000
    assert probe.measure_duration(str(sparse_clip), container="mov") == pytest.approx(3600, abs=2)
    assert probe.measure_duration(str(clip(width=320, height=240)), container="mov") == pytest.approx(
        2, abs=0.2
    )


def test_a_tiny_file_declaring_an_hour_is_refused_over_the_limit(user_client, user, sparse_clip, settings):
    settings.MEDIA_MAX_DURATION = 600
    with open(sparse_clip, "rb") as handle:
        response = user_client.post("/api/videos/create", {"file": handle, "title": "x"}, format="multipart")
    assert response.status_code == 422, response.content
    assert response.json()["error"]["code"] == "video_too_long"
    assert not Video.objects.filter(owner=user).exists()


def test_the_worker_refuses_it_without_the_intake(sparse_clip, media_root, settings):
    settings.MEDIA_MAX_DURATION = 600
    video = VideoFactory(status=Video.Status.PROCESSING)
    source = f"videos/{video.pk}/source/a1/clip.mp4"
    (media_root / source).parent.mkdir(parents=True, exist_ok=True)
    (media_root / source).write_bytes(sparse_clip.read_bytes())
    media_file = MediaFile.objects.create(
        video=video, status=MediaFile.Status.UPLOADED, source_path=source, container="mov", duration=2.0
    )
    services.media_file_transcode(media_file_id=media_file.pk)
    media_file.refresh_from_db()
    assert media_file.status == "failed" and "the limit is 600 s" in media_file.error
