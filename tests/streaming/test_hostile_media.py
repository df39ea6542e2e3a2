"""Uploads that try to make ffprobe/ffmpeg read something other than themselves: playlists (HLS
master and media), concat scripts, DASH manifests, SDP descriptions, images and image sequences,
each under its own extension and under an allowed one (``.mp4``, ``.mkv``).

Every one is refused with 422 ``invalid_media`` on every path (multipart create, the upload URL,
an S3 upload completed through a presigned GET), no other file or URL is read (a canary HTTP
server counts requests), and the worker refuses them too when a media file points at one
without having gone through the intake.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from streaming import services
from streaming.models import MediaFile
from streaming.probe import InvalidMedia, probe
from tests.factories import VideoFactory
from tests.streaming.conftest import upload_to_target
from videos.models import Video

pytestmark = pytest.mark.django_db
FFMPEG_LAVFI = ("ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i")


@dataclass
class Canary:
    """An HTTP server standing for an internal service: it records every request it gets."""

    url: str
    hits: list[str]


@pytest.fixture
def canary() -> Iterator[Canary]:
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Canary(url=f"http://127.0.0.1:{server.server_address[1]}", hits=hits)
    server.shutdown()
    server.server_close()


@pytest.fixture
def victim(ready_video: Callable[..., Video], media_root: Path) -> dict[str, str]:
    """Another user's private, ready video: the absolute paths of its files in storage."""
    video = ready_video(privacy=Video.Privacy.PRIVATE)
    prefix = media_root / MediaFile.objects.get(video=video).output_prefix
    return {
        "segment": str(prefix / "360p" / "seg_00000.ts"),
        "playlist": str(prefix / "360p" / "index.m3u8"),
        "master": str(prefix / "master.m3u8"),
    }


@pytest.fixture(scope="session")
def still_image(clips_dir: Path) -> bytes:
    path = clips_dir / "still.jpg"
    if not path.exists():
        subprocess.run(
            [*FFMPEG_LAVFI, "testsrc2=size=320x240", "-frames:v", "1", str(path)],
            check=True,
            timeout=60,
        )
    return path.read_bytes()


@pytest.fixture(scope="session")
def animated_gif(clips_dir: Path) -> bytes:
    path = clips_dir / "moving.gif"
    if not path.exists():
        subprocess.run(
            [*FFMPEG_LAVFI, "testsrc2=size=160x120:rate=5", "-t", "2", str(path)],
            check=True,
            timeout=60,
        )
    return path.read_bytes()


def hls_media(target: dict[str, str]) -> bytes:
    return (
        f"#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:2.5,\n{target['segment']}\n"
        "#EXT-X-ENDLIST\n"
    ).encode()


def hls_master(target: dict[str, str]) -> bytes:
    return f"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=500000,RESOLUTION=640x360\n{target['playlist']}\n".encode()


def concat(target: dict[str, str]) -> bytes:
    return f"ffconcat version 1.0\nfile '{target['segment']}'\nfile 'file:{target['segment']}'\n".encode()


def dash(target: dict[str, str]) -> bytes:
    return (
        '<?xml version="1.0"?>\n'
        '<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT2S" '
        'minBufferTime="PT1S" profiles="urn:mpeg:dash:profile:isoff-on-demand:2011">'
        '<Period><AdaptationSet mimeType="video/mp2t"><Representation id="1" bandwidth="500000">'
        f"<BaseURL>{target['segment']}</BaseURL></Representation></AdaptationSet></Period></MPD>\n"
    ).encode()


def sdp(target: dict[str, str]) -> bytes:
    host = target.get("host", "127.0.0.1")
    return (
        f"v=0\r\no=- 0 0 IN IP4 {host}\r\ns=x\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
        "m=video 5004 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
    ).encode()


TEXT_TRICKS: dict[str, tuple[Callable[[dict[str, str]], bytes], str]] = {
    "hls-media": (hls_media, "m3u8"),
    "hls-master": (hls_master, "m3u8"),
    "concat": (concat, "ffconcat"),
    "dash": (dash, "mpd"),
    "sdp": (sdp, "sdp"),
}


def _trick_cases() -> list[tuple[str, str]]:
    cases = []
    for name, (_build, own_extension) in TEXT_TRICKS.items():
        cases += [(name, own_extension), (name, "mp4")]
    return [*cases, ("hls-media", "mkv"), ("image", "jpg"), ("image", "mp4"), ("gif", "mp4")]


CASES = _trick_cases()
IDS = [f"{name}-as-{extension}" for name, extension in CASES]


@pytest.fixture
def trick(
    victim: dict[str, str], still_image: bytes, animated_gif: bytes
) -> Callable[[str, dict[str, str] | None], bytes]:
    def build(name: str, target: dict[str, str] | None = None) -> bytes:
        if name == "image":
            return still_image
        if name == "gif":
            return animated_gif
        return TEXT_TRICKS[name][0](target or victim)

    return build


def _assert_invalid_media(response: Any) -> None:
    assert response.status_code == 422, response.content
    assert response.json()["error"]["code"] == "invalid_media"


# --- The probe itself ---------------------------------------------------------------------------


def test_the_trick_works_on_ffprobe_left_to_itself(victim, tmp_path):
    """The threat is real: plain ffprobe reads the victim's segment through a playlist."""
    path = tmp_path / "evil.mp4"
    path.write_bytes(hls_media(victim))
    plain = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=width,height", "-of", "csv=p=0", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert plain.stdout.strip().splitlines()[0] == "640,360"
    with pytest.raises(InvalidMedia, match="format is not accepted"):
        probe(str(path))


def test_a_real_video_probes_with_its_container(clip):
    assert probe(str(clip(width=320, height=240))).container == "mov"
    assert probe(str(clip(width=320, height=240, extension="mkv"))).container == "matroska"


# --- Every intake path -------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "extension"), CASES, ids=IDS)
def test_multipart_create_refuses_it(user_client, user, trick, name, extension):
    response = user_client.post(
        "/api/videos/create",
        {"file": _named(trick(name), f"clip.{extension}"), "title": "trick"},
        format="multipart",
    )
    _assert_invalid_media(response)
    assert not Video.objects.filter(owner=user).exists()


@pytest.mark.parametrize(("name", "extension"), CASES, ids=IDS)
def test_the_upload_url_refuses_it(user_client, trick, name, extension):
    created = user_client.post(
        "/api/videos/create", {"title": "trick", "file_name": f"clip.{extension}"}, format="json"
    )
    assert created.status_code == 201
    video_id = created.json()["id"]
    response = user_client.put(
        f"/api/videos/{video_id}/upload", trick(name), content_type="application/octet-stream"
    )
    _assert_invalid_media(response)
    assert MediaFile.objects.get(video_id=video_id).status == MediaFile.Status.FAILED
    assert not MediaFile.objects.filter(video_id=video_id, renditions__isnull=False).exists()


@pytest.mark.services
@pytest.mark.parametrize(
    ("name", "extension"),
    [("hls-media", "mp4"), ("hls-media", "m3u8"), ("hls-master", "mp4"), ("dash", "mpd"), ("sdp", "mp4")],
)
def test_an_s3_upload_cannot_reach_internal_urls(user_client, bucket, trick, canary, name, extension):
    """Probed through a presigned URL, a playlist naming an internal address opens nothing."""
    target = {"segment": f"{canary.url}/internal/seg.ts", "playlist": f"{canary.url}/internal/index.m3u8"}
    created = user_client.post(
        "/api/videos/create", {"title": "ssrf", "file_name": f"clip.{extension}"}, format="json"
    )
    assert created.status_code == 201, created.content
    body = created.json()
    upload_to_target(body["upload"], trick(name, target))
    response = user_client.post(body["upload"]["complete_url"], {}, format="json")
    _assert_invalid_media(response)
    assert canary.hits == []
    assert MediaFile.objects.get(video_id=body["id"]).status == MediaFile.Status.FAILED


# --- The worker, should a probe ever be bypassed -------------------------------------------------


@pytest.mark.parametrize("container", ["", "mov", "hls"])
@pytest.mark.parametrize(
    ("name", "extension"), [("hls-media", "mp4"), ("hls-master", "m3u8"), ("concat", "mp4")]
)
def test_the_worker_refuses_it_without_the_intake(trick, media_root, container, name, extension):
    video = VideoFactory(status=Video.Status.PROCESSING)
    source = f"videos/{video.pk}/source/clip.{extension}"
    (media_root / source).parent.mkdir(parents=True, exist_ok=True)
    (media_root / source).write_bytes(trick(name))
    media_file = MediaFile.objects.create(
        video=video,
        status=MediaFile.Status.UPLOADED,
        source_path=source,
        source_size=(media_root / source).stat().st_size,
        container=container,
        duration=2.5,
    )
    assert services.media_file_transcode(media_file_id=media_file.pk) is None
    media_file.refresh_from_db()
    assert media_file.status == MediaFile.Status.FAILED
    assert not media_file.renditions.exists() and not media_file.output_prefix
    assert not (media_root / f"videos/{video.pk}/hls").exists() or not any(
        (media_root / f"videos/{video.pk}/hls").rglob("*.ts")
    )


def test_the_worker_opens_no_url_a_playlist_names(trick, media_root, canary):
    video = VideoFactory(status=Video.Status.PROCESSING)
    source = f"videos/{video.pk}/source/clip.mp4"
    (media_root / source).parent.mkdir(parents=True, exist_ok=True)
    (media_root / source).write_bytes(
        trick("hls-media", {"segment": f"{canary.url}/seg.ts", "playlist": f"{canary.url}/i.m3u8"})
    )
    media_file = MediaFile.objects.create(
        video=video, status=MediaFile.Status.UPLOADED, source_path=source, duration=2.5
    )
    services.media_file_transcode(media_file_id=media_file.pk)
    media_file.refresh_from_db()
    assert media_file.status == MediaFile.Status.FAILED
    assert canary.hits == []


def _named(data: bytes, name: str) -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data, content_type="video/mp4")
