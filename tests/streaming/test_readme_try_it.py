"""The README's "Try it" lines, run as they are written against a live server and a real
transcoding worker: register, log in, upload, follow progress, get the stream URL."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.processes import ROOT, http_get

pytestmark = pytest.mark.slow

BLOCK = re.compile(r"<!-- try-it:start -->\s*```bash\n(.*?)```\s*<!-- try-it:end -->", re.S)


def try_it_lines() -> str:
    match = BLOCK.search((ROOT / "README.md").read_text())
    assert match, "README.md has no try-it block"
    return match.group(1)


def test_the_block_covers_every_step():
    lines = try_it_lines()
    for step in ("/api/auth/register", "/api/auth/login", "-F file=@", "/media", "/stream"):
        assert step in lines, step


@pytest.mark.django_db(transaction=True)
def test_readme_try_it_runs_against_a_live_server(live_server, transcoding_worker, tmp_path: Path):
    env = {key: value for key, value in os.environ.items() if not key.startswith("DJANGO")}
    completed = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", try_it_lines()],
        cwd=tmp_path,
        env={**env, "BASE": live_server.url},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr + transcoding_worker.tail()
    # Progress was shown (status and percent), and it ended ready.
    progress = completed.stderr.splitlines()
    assert progress and progress[-1] == "ready 100", completed.stderr
    output = completed.stdout.strip().splitlines()
    playlist_url, watch_url = output[-2], output[-1]
    assert re.fullmatch(r"http://[^ ]+/media/s/[^/]+/master\.m3u8", playlist_url), playlist_url
    status, body = http_get(playlist_url)
    assert status == 200 and body.startswith(b"#EXTM3U"), body[:200]
    assert b"#EXT-X-STREAM-INF" in body
    status, page = http_get(watch_url)
    assert status == 200 and b"My first video" in page
