"""End to end in headless Chromium: upload a generated clip, wait for ready, watch it at /watch/{id}.

Needs Debian's ``chromium`` and ``chromium-driver`` (streaming/tools/install-browser.sh).
"""

from __future__ import annotations

import shutil
import time

import pytest
from prometheus_client import REGISTRY

from streaming.models import MediaFile
from tests.support.browser import chromium
from tests.support.processes import wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not shutil.which("chromium"), reason="chromium is not installed"),
]


@pytest.fixture
def browser():
    with chromium() as driver:
        yield driver


@pytest.mark.django_db(transaction=True)
def test_upload_then_watch_in_a_browser_at_a_rendition_the_plan_allows(
    user_client, clip, transcoding_worker, live_server, browser
):
    # A 720p clip: the ladder has 720p, 480p and 360p; an anonymous viewer's plan allows 480p.
    with open(clip(width=1280, height=720, duration=4, fps=24), "rb") as handle:
        response = user_client.post(
            "/api/videos/create", {"file": handle, "title": "Browser test"}, format="multipart"
        )
    assert response.status_code == 201, response.content
    video_id = response.json()["id"]
    assert wait_until(
        lambda: MediaFile.objects.get(video_id=video_id).status in ("ready", "failed"), timeout=180
    ), transcoding_worker.tail()
    assert MediaFile.objects.get(video_id=video_id).status == "ready", transcoding_worker.tail()

    startups = REGISTRY.get_sample_value(
        "video_startup_seconds_count", {"rendition": "480p", "device": "desktop"}
    )
    browser.get(f"{live_server.url}/watch/{video_id}")
    assert "Browser test" in browser.title

    def played() -> bool:
        state = browser.execute_script(
            "return {t: document.getElementById('video').currentTime, e: window.videoplatformPlayer.error}"
        )
        assert not state["e"], state["e"]
        return state["t"] > 1.0

    deadline = time.monotonic() + 60
    while not played():
        assert time.monotonic() < deadline, browser.find_element("id", "status").text
        time.sleep(0.25)

    levels = browser.execute_script("return window.videoplatformPlayer.hls.levels.map(l => l.height)")
    assert sorted(levels) == [360, 480]  # no 720p in this viewer's master playlist
    height = browser.execute_script("return document.getElementById('video').videoHeight")
    assert height in (480, 360)
    assert "plan allows up to 480p" in browser.find_element("id", "status").text

    # The page measured its start-up, in order, and reported it to the beacon endpoint.
    marks = browser.execute_script("return window.videoplatformPlayer.marks")
    order = ["stream_answer", "master_playlist", "media_playlist", "first_segment", "playing"]
    assert [marks[name] for name in order] == sorted(marks[name] for name in order), marks
    sent = browser.execute_script("return window.videoplatformPlayer.sent")
    startup = [event for event in sent if event["type"] == "startup"]
    assert startup == [{"type": "startup", "startup_ms": marks["playing"], "rendition": "480p"}], sent
    assert wait_until(
        lambda: (
            (
                REGISTRY.get_sample_value(
                    "video_startup_seconds_count", {"rendition": "480p", "device": "desktop"}
                )
                or 0
            )
            == (startups or 0) + 1
        ),
        timeout=10,
    )


@pytest.mark.django_db(transaction=True)
def test_watch_page_of_a_private_video_is_404(live_server, browser, user):
    from tests.factories import VideoFactory
    from videos.models import Video

    video = VideoFactory(owner=user, privacy=Video.Privacy.PRIVATE)
    browser.get(f"{live_server.url}/watch/{video.pk}")
    assert "Browser test" not in browser.title
    assert video.title not in browser.page_source
