"""A transcoded live ladder watched in headless Chromium at /watch/live/{id} (hls.js).

Needs Debian's ``chromium`` and ``chromium-driver`` (streaming/tools/install-browser.sh).
"""

from __future__ import annotations

import shutil
import time
from typing import Any

import pytest

from tests.streaming.test_watch_page import browser  # noqa: F401 - the fixture
from tests.support.processes import http_get, wait_until

from .conftest import make_source, needs_ingest

pytestmark = [
    pytest.mark.slow,
    needs_ingest,
    pytest.mark.skipif(not shutil.which("chromium"), reason="chromium is not installed"),
    pytest.mark.django_db(transaction=True),
]


def test_ladder_broadcast_plays_in_a_browser(
    settings: Any,
    ingest,
    broadcaster,
    sources_dir,
    user_client,
    live_server,
    browser,  # noqa: F811
):
    # Every plan gets the ladder here; the source is 480p: the ladder is the source + 360p.
    settings.LIVE_LADDER_PLANS = ["free"]
    created = user_client.post("/api/live", {"title": "Ladder", "latency_mode": "low"}, format="json").json()
    broadcaster(f"{ingest.rtmp_url}/{created['stream_key']}", make_source(sources_dir, 854, 480)).start()
    assert wait_until(
        lambda: user_client.get(f"/api/live/{created['id']}").json()["status"] == "live", timeout=40
    ), ingest.tail()

    stream = user_client.get(f"/api/live/{created['id']}/stream").json()
    assert stream["latency_mode"] == "low"
    # The anonymous plan allows 480p: both rungs, highest first, each never above the source.
    assert [(r["width"], r["height"]) for r in stream["renditions"]] == [(854, 480), (640, 360)]
    code, playlist = http_get(stream["renditions"][1]["url"].replace("http://testserver", live_server.url))
    assert code == 200 and b"#EXT-X-TARGETDURATION:1" in playlist

    browser.get(f"{live_server.url}/watch/live/{created['id']}")
    assert "Ladder" in browser.title

    def position() -> float:
        state = browser.execute_script(
            "return {t: document.getElementById('video').currentTime, e: window.videoplatformPlayer.error}"
        )
        assert not state["e"], state["e"]
        return float(state["t"])

    deadline = time.monotonic() + 60
    while position() <= 0.5:
        assert time.monotonic() < deadline, browser.find_element("id", "status").text
        time.sleep(0.25)
    start = position()
    assert wait_until(lambda: position() - start >= 2.0, timeout=20), browser.find_element(
        "id", "status"
    ).text
    levels = browser.execute_script("return window.videoplatformPlayer.hls.levels.map(l => l.height)")
    assert sorted(levels) == [360, 480]
    latency = browser.execute_script("return window.videoplatformPlayer.hls.latency")
    assert latency < 8, latency
