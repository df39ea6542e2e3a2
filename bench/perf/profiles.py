"""Where the time goes: py-spy samples of every gunicorn worker under load, summarised.

py-spy (requirements-dev.txt) reads the workers' stacks from outside (``--nonblocking``: the
workers are never paused) and writes collapsed stacks of the thread holding the GIL (``--gil``:
threads waiting for it are not working); each sample is put in the innermost
area it belongs to (JSON rendering, DRF serializers, the ORM, Redis, gunicorn, ...), and the
functions that were on CPU themselves are listed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

# (area, substrings of a frame's file path); the first area that matches, innermost frame first.
AREAS: list[tuple[str, tuple[str, ...]]] = [
    ("password hashing (Argon2)", ("argon2",)),
    ("Redis client", ("/redis/", "/django_redis/")),
    ("PostgreSQL driver (psycopg)", ("/psycopg/", "/psycopg_binary/")),
    ("Django ORM", ("/django/db/",)),
    (
        "JSON rendering and parsing",
        (
            "/rest_framework/renderers",
            "/rest_framework/parsers",
            "/json/",
            "orjson",
            "videoplatform/api/rendering",
        ),
    ),
    (
        "DRF serializers",
        (
            "/rest_framework/serializers",
            "/rest_framework/fields",
            "/rest_framework/relations",
            "/rest_framework/utils/serializer_helpers",
            "videoplatform/api/fields",
        ),
    ),
    ("response compression", ("brotli", "/gzip.py", "zlib")),
    ("metrics (prometheus_client)", ("/prometheus_client/",)),
    ("access log", ("/gunicorn/glogging", "/logging/", "videoplatform/entry/serving", "pythonjsonlogger")),
    ("cache tiers (videoplatform/cache)", ("videoplatform/cache/",)),
    ("response cache (videoplatform/entry/response_cache)", ("videoplatform/entry/response_cache",)),
    (
        "middleware",
        (
            "/django/middleware/",
            "/django/contrib/sessions/",
            "/django/contrib/auth/",
            "/django/contrib/messages/",
            "/whitenoise/",
            "videoplatform/entry/middleware",
            "videoplatform/db/",
        ),
    ),
    ("DRF views, requests, negotiation", ("/rest_framework/",)),
    ("URL resolving", ("/django/urls/",)),
    ("Django request/response", ("/django/core/handlers/", "/django/http/", "/django/utils/")),
    ("gunicorn (HTTP parsing, sockets)", ("/gunicorn/",)),
    ("application code", ("/videos/", "/accounts/", "/subscriptions/", "/streaming/", "/videoplatform/")),
]
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def available() -> bool:
    return shutil.which("py-spy") is not None or _bundled().exists()


def _bundled() -> Path:
    import sys

    return Path(sys.executable).parent / "py-spy"


def record(pids: list[int], seconds: float, workdir: Path, rate: int = 250) -> list[Path]:
    """Starts py-spy on each pid; returns the processes' output files once they are done."""
    binary = shutil.which("py-spy") or str(_bundled())
    workdir.mkdir(parents=True, exist_ok=True)
    outputs, processes = [], []
    for pid in pids:
        output = workdir / f"profile-{pid}.txt"
        outputs.append(output)
        processes.append(
            subprocess.Popen(
                [
                    binary,
                    "record",
                    "--pid",
                    str(pid),
                    "--duration",
                    str(int(seconds)),
                    "--rate",
                    str(rate),
                    "--format",
                    "raw",
                    "--nonblocking",
                    "--output",
                    str(output),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    return [output for output, process in zip(outputs, processes, strict=True) if _wait(process, seconds)]


def _wait(process: subprocess.Popen[bytes], seconds: float) -> bool:
    try:
        return process.wait(timeout=seconds + 60) == 0
    except subprocess.TimeoutExpired:
        process.kill()
        return False


def _frame(text: str) -> tuple[str, str]:
    match = FRAME.match(text.strip())
    if not match:
        return text.strip(), ""
    return match["func"], match["file"]


def _area(frames: list[tuple[str, str]]) -> str:
    for _, file in reversed(frames):
        path = "/" + file.lstrip("/")  # py-spy shortens library paths (``gunicorn/util.py``)
        for area, needles in AREAS:
            if any(needle in path for needle in needles):
                return area
    return "other (interpreter, threads)"


_REPO = str(Path(__file__).resolve().parents[2])  # the repository's root


def _short(func: str, path: str) -> str:
    for marker in ("site-packages/", f"{_REPO}/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{func} ({path})"


def summarise(files: list[Path], top: int = 12) -> dict[str, Any]:
    areas: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for file in files:
        for line in file.read_text(errors="replace").splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [_frame(part) for part in stack.split(";")]
            # py-spy puts the thread (and process) first; real frames have a file.
            frames = [frame for frame in frames if frame[1]]
            if not frames:
                continue
            total += count
            areas[_area(frames)] += count
            own[_short(*frames[-1])] += count
    share = (lambda n: round(100.0 * n / total, 1)) if total else (lambda n: 0.0)
    return {
        "samples": total,
        "areas": [{"area": area, "percent": share(n)} for area, n in areas.most_common()],
        "self": [{"function": name, "percent": share(n)} for name, n in own.most_common(top)],
    }
