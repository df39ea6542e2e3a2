"""The delivery benchmark's measurement, bounded: a few viewers for a few seconds, straight to
the app and through nginx caching by the app's own Cache-Control.

The full benchmark (bench/delivery.py, hundreds of viewers per step) is not run by CI.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest

from bench import delivery

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_viewers_fetch_segments_on_schedule_from_the_origin(live_server: Any, ready_video: Any) -> None:
    video = ready_video()
    step = asyncio.run(delivery.run_step(live_server.url, video.pk, viewers=3, seconds=3.0))
    assert step.errors == 0
    # Each viewer: the stream answer, two playlists, then segments (the 2.5 s video loops).
    assert step.requests >= 3 * 4 and step.bytes > 0 and step.segment_ms


@pytest.mark.skipif(not shutil.which("nginx"), reason="nginx is not installed")
def test_a_shared_cache_in_front_serves_every_viewer_the_same_copy(
    live_server: Any, ready_video: Any, tmp_path: Path
) -> None:
    video = ready_video()
    with delivery.nginx(tmp_path, live_server.url, _free_port()) as (edge_url, _pid):
        step = asyncio.run(delivery.run_step(edge_url, video.pk, viewers=4, seconds=2.0))
        counts = delivery.cache_counts(tmp_path)
    assert step.errors == 0
    # Viewers share URLs (the expiry is bucketed) and the app lets shared caches keep files:
    # after the first viewer's misses, the edge answers from its cache.
    assert counts.get("HIT", 0) > counts.get("MISS", 0) > 0
