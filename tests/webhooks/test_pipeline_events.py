"""The media pipeline's real ends publish video.ready and video.failed, each showing that status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streaming import services as media_services
from streaming import storage
from streaming.models import MediaFile
from tests.factories import VideoFactory
from tests.streaming.conftest import _media_storage, clip, clips_dir, media_root  # noqa: F401
from tests.webhooks.conftest import run_due
from tests.webhooks.receiver import Receiver
from videos.models import Video

pytestmark = pytest.mark.django_db


def _uploaded(owner: Any, source: Path) -> MediaFile:
    video = VideoFactory(owner=owner, status=Video.Status.PROCESSING)
    name = storage.source_name(video.pk, source.name)
    with open(source, "rb") as handle:
        storage.save_file(name, handle)
    return MediaFile.objects.create(
        video=video, status=MediaFile.Status.UPLOADED, source_path=name, source_size=source.stat().st_size
    )


def test_a_transcode_that_finishes_sends_video_ready_and_one_that_fails_video_failed(
    receiver: Receiver,
    endpoint_for: Any,
    user: Any,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    django_capture_on_commit_callbacks: Any,
) -> None:
    endpoint_for(user, events=["video.ready", "video.failed"])
    make_clip = request.getfixturevalue("clip")
    good = _uploaded(user, make_clip(width=426, height=240, duration=2.0))
    broken_path = tmp_path / "broken.mp4"
    broken_path.write_bytes(b"this is a text file, not a video\n" * 20)
    broken = _uploaded(user, broken_path)

    with django_capture_on_commit_callbacks(execute=True):
        assert media_services.media_file_transcode(media_file_id=good.pk) is not None
        assert media_services.media_file_transcode(media_file_id=broken.pk) is None
    run_due()

    got = [
        (r.payload["type"], r.payload["data"]["id"], r.payload["data"]["status"]) for r in receiver.received()
    ]
    assert sorted(got) == sorted(
        [("video.ready", good.video_id, "ready"), ("video.failed", broken.video_id, "failed")]
    )
    ready = next(r for r in receiver.received() if r.payload["type"] == "video.ready")
    assert ready.payload["data"]["duration"] == pytest.approx(2.0, abs=0.2)
