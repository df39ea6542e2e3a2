"""End to end on loopback: a real ffmpeg broadcaster publishes over RTMP to the real ingest
(nginx-rtmp + the packager's ffmpeg), the app authorises it through the hooks, and a viewer
reads the live HLS through signed URLs; then a reconnect, the end, and the replay as a VOD."""

from __future__ import annotations

import logging
import re
import signal
import subprocess
import time
from typing import Any

import pytest

from streaming.live.models import LiveSession, LiveStream
from streaming.models import MediaFile
from tests.support.processes import http_get, wait_until

from .conftest import needs_ingest

pytestmark = [pytest.mark.slow, needs_ingest, pytest.mark.django_db(transaction=True)]

MEDIA_SEQUENCE = re.compile(r"#EXT-X-MEDIA-SEQUENCE:(\d+)")


def _status(client: Any, live_id: str) -> str:
    return str(client.get(f"/api/live/{live_id}").json()["status"])


def _media_playlist(stream: dict[str, Any]) -> str:
    code, body = http_get(stream["renditions"][0]["url"])
    assert code == 200, body
    return body.decode()


def _served_by(stream: dict[str, Any], base_url: str) -> dict[str, Any]:
    """The answer's URLs as a viewer reaches them (the test client's host is "testserver")."""

    def fix(url: str) -> str:
        return url.replace("http://testserver", base_url)

    renditions = [{**r, "url": fix(r["url"])} for r in stream["renditions"]]
    return {**stream, "master_playlist_url": fix(stream["master_playlist_url"]), "renditions": renditions}


def _processes_writing(folder: Any) -> list[str]:
    found = subprocess.run(["pgrep", "-af", str(folder)], capture_output=True, text=True, check=False)
    return [line for line in found.stdout.splitlines() if "pgrep" not in line]


def _segments(playlist: str) -> list[str]:
    return [line for line in playlist.splitlines() if line and not line.startswith("#")]


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_bad_key_is_refused_fast_and_writes_nothing(ingest, broadcaster, user_client):
    # On the hook view's own logger: the live server's start-up may configure logging again,
    # which replaces the root logger's handlers (and so pytest's capture).
    records, views_logger = _Records(), logging.getLogger("streaming.live.views")
    views_logger.addHandler(records)
    views_logger.setLevel(logging.INFO)
    created = user_client.post("/api/live", {"title": "Never live"}, format="json").json()
    started = time.monotonic()
    publisher = broadcaster(f"{ingest.rtmp_url}/sk_live_not-a-key")
    process = publisher.start()
    code = process.wait(timeout=10)
    elapsed = time.monotonic() - started
    assert code != 0
    assert elapsed < 2.0, elapsed
    views_logger.removeHandler(records)
    views_logger.setLevel(logging.NOTSET)
    # The app refused it (not an unreachable hook).
    assert any("live publish refused" in message for message in records.messages)
    assert list((ingest.dir / "hls").iterdir()) == []
    assert list((ingest.dir / "rec").iterdir()) == []
    assert _status(user_client, created["id"]) == "idle"
    assert not LiveSession.objects.exists()


def test_publish_watch_reconnect_end_and_replay(
    ingest, broadcaster, user_client, api_client, live_worker, live_server
):
    response = user_client.post(
        "/api/live", {"title": "First broadcast", "reconnect_window": 30}, format="json"
    )
    assert response.status_code == 201, response.content
    created = response.json()
    key, live_id = created["stream_key"], created["id"]
    assert created["status"] == "idle" and key.startswith("sk_live_")
    assert LiveStream.objects.get(pk=live_id).stream_key_digest != key  # only a digest is kept
    assert "stream_key" not in user_client.get(f"/api/live/{live_id}").json()

    # Not live yet: the stream endpoint says so.
    early = api_client.get(f"/api/live/{live_id}/stream")
    assert early.status_code == 409 and early.json()["error"]["status"] == "idle"

    publisher = broadcaster(f"{ingest.rtmp_url}/{key}")
    publisher.start()
    assert wait_until(lambda: _status(api_client, live_id) == "live", timeout=30), ingest.tail()
    session_id = api_client.get(f"/api/live/{live_id}").json()["session_id"]

    answer = api_client.get(f"/api/live/{live_id}/stream")
    assert answer.status_code == 200, answer.content
    stream = _served_by(answer.json(), live_server.url)
    assert stream["latency_mode"] == "standard" and stream["status"] == "live"
    assert stream["video_id"] == created["video_id"] and stream["duration"] is None
    assert [r["height"] for r in stream["renditions"]] == [360]  # passthrough: the source only
    for url in [stream["master_playlist_url"], *(r["url"] for r in stream["renditions"])]:
        assert key not in url and "/live/s/" in url

    code, master = http_get(stream["master_playlist_url"])
    assert code == 200 and b"RESOLUTION=640x360" in master and b"src/index.m3u8" in master

    # The playlist advances: 2 s segments, a sliding window.
    assert wait_until(lambda: len(_segments(_media_playlist(stream))) >= 2, timeout=20)
    first = _media_playlist(stream)
    assert key not in first
    assert "#EXT-X-TARGETDURATION:2" in first
    time.sleep(4.5)
    later = _media_playlist(stream)
    assert _segments(later)[-1] != _segments(first)[-1]
    code, segment = http_get(stream["renditions"][0]["url"].rsplit("/", 1)[0] + "/" + _segments(later)[-1])
    assert code == 200 and segment[:1] == b"G"  # an MPEG-TS packet
    # Nothing on the ingest is named by the key.
    assert not list(ingest.dir.rglob(f"*{key}*"))
    assert api_client.get(f"/api/live/{live_id}").json()["viewer_count"] >= 1

    # A second publisher with the same key is refused while the first one is on.
    intruder = broadcaster(f"{ingest.rtmp_url}/{key}").start()
    assert intruder.wait(timeout=10) != 0

    # The broadcaster freezes (its network or machine died: no data, no goodbye): the ingest
    # drops it as idle and the broadcast waits in its reconnect window; it comes back within the
    # window: the same session continues.
    sequence_before = int(MEDIA_SEQUENCE.search(_media_playlist(stream)).group(1))  # type: ignore[union-attr]
    assert publisher.process is not None
    publisher.process.send_signal(signal.SIGSTOP)
    assert wait_until(lambda: _status(api_client, live_id) == "reconnecting", timeout=15), ingest.tail()
    publisher.process.kill()
    publisher.process.wait(timeout=10)
    assert api_client.get(f"/api/live/{live_id}/stream").status_code == 200  # viewers keep their URLs
    time.sleep(2)
    broadcaster(f"{ingest.rtmp_url}/{key}").start()
    assert wait_until(lambda: _status(api_client, live_id) == "live", timeout=30), ingest.tail()
    assert api_client.get(f"/api/live/{live_id}").json()["session_id"] == session_id
    assert wait_until(lambda: "#EXT-X-DISCONTINUITY" in _media_playlist(stream), timeout=20), _media_playlist(
        stream
    )
    resumed = _media_playlist(stream)
    assert int(MEDIA_SEQUENCE.search(resumed).group(1)) >= sequence_before  # type: ignore[union-attr]
    assert LiveSession.objects.get(pk=session_id).connections == 2

    # The owner ends it: the publisher is dropped, the replay becomes a ready video.
    time.sleep(3)
    ended = user_client.post(f"/api/live/{live_id}/end")
    assert ended.status_code == 200, ended.content
    assert ended.json()["status"] == "ended"
    assert user_client.post(f"/api/live/{live_id}/end").status_code == 409
    assert api_client.get(f"/api/live/{live_id}/stream").status_code == 409
    # The publisher was dropped and no packager (nor its ffmpeg) outlives the broadcast.
    assert wait_until(lambda: not _processes_writing(ingest.dir / "hls" / session_id), timeout=15)
    assert wait_until(
        lambda: MediaFile.objects.filter(
            video_id=created["video_id"], status__in=["ready", "failed"]
        ).exists(),
        timeout=180,
    ), live_worker.tail() + ingest.tail()
    media = MediaFile.objects.get(video_id=created["video_id"])
    assert media.status == "ready", media.error
    assert media.duration and media.duration > 8
    assert media.renditions.filter(quality=360).exists()
    detail = user_client.get(f"/api/live/{live_id}").json()
    assert detail["replay_status"] == "ready" and detail["replay_video_id"] == created["video_id"]
    assert detail["video_id"] != created["video_id"]  # the next broadcast gets its own video
    assert api_client.get(f"/api/videos/{created['video_id']}/stream").status_code == 200
