"""The playback benchmark's measurement, bounded: two plays under emulated 5 Mb/s 80 ms.

The full benchmark (bench/playback.py, 50 plays per network shape) is not run by CI.
"""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from bench import playback

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not shutil.which("chromium"), reason="chromium is not installed"),
    pytest.mark.django_db(transaction=True),
]


def test_start_time_is_measured_in_parts_under_network_emulation(live_server: Any, ready_video: Any) -> None:
    video = ready_video()
    driver = playback.chromium_driver()
    try:
        fast = playback.measure(
            driver, f"{live_server.url}/watch/{video.pk}", playback.SHAPES["unthrottled"], 1
        )
        slow = playback.measure(driver, f"{live_server.url}/watch/{video.pk}", playback.SHAPES["5mbps"], 2)
    finally:
        driver.quit()

    for marks in fast + slow:
        parts = playback.parts(marks)
        assert all(value >= 0 for value in parts.values()), marks
        assert sum(parts.values()) == marks["playing"]
        assert marks["height"] in (480, 360)
        assert marks["page"] >= marks["playing"]  # the page loaded before it asked to play
    # Two round trips of 80 ms at least (the stream answer, then the media playlist) and more.
    assert min(m["playing"] for m in slow) >= 160
    line = playback.report(playback.SHAPES["5mbps"], slow)
    # case, runs, P50, P95, <2s, cold, five parts, from the page, the start rung: a cell per column.
    assert line.startswith("5mbps") and len(line.split()) == 13
