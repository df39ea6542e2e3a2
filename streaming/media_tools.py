"""The media programs the pipeline runs (ffprobe checks uploads, ffmpeg transcodes them).

A missing program is a named, explicit failure instead of an error per file: an upload is
refused with ``media_tools_unavailable``, ``/health/detail`` and the start-up logs list the
programs and their versions, and a worker without them does not take transcoding jobs.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import subprocess
from typing import Any

from django.conf import settings
from health_check.base import HealthCheck
from health_check.exceptions import ServiceUnavailable

logger = logging.getLogger(__name__)

VERSION_TIMEOUT = 10  # seconds
# What each step needs: the upload's probe, and a transcode (which probes again, then encodes).
UPLOAD_TOOLS = ("ffprobe",)
TRANSCODE_TOOLS = ("ffmpeg", "ffprobe")
TRANSCODING_QUEUE = "transcoding"
INSTALL_HINT = "install ffmpeg (Debian/Ubuntu: apt-get install ffmpeg), or set FFMPEG_BINARY/FFPROBE_BINARY"


class MediaToolsUnavailable(Exception):
    """A media program the step needs is not installed (or not executable)."""

    def __init__(self, missing: list[str]) -> None:
        self.missing = missing
        names = " and ".join(missing)
        verb = "is" if len(missing) == 1 else "are"
        super().__init__(f"{names} {verb} not installed on this server; {INSTALL_HINT}.")


def binary(name: str) -> str:
    """The configured command for ``ffmpeg`` or ``ffprobe`` (a name on PATH or a path)."""
    return str(settings.FFMPEG_BINARY if name == "ffmpeg" else settings.FFPROBE_BINARY)


def missing(names: tuple[str, ...] = TRANSCODE_TOOLS) -> list[str]:
    """The programs of ``names`` that cannot be run here (a few ``stat`` calls, no process)."""
    return [name for name in names if shutil.which(binary(name)) is None]


def require(names: tuple[str, ...]) -> None:
    """Raises ``MediaToolsUnavailable`` naming every program of ``names`` that is missing."""
    absent = missing(names)
    if absent:
        raise MediaToolsUnavailable(absent)


def version(name: str) -> str | None:
    """``ffmpeg 6.1.1`` style: the program and its version, or None when it cannot run."""
    path = shutil.which(binary(name))
    if path is None:
        return None
    try:
        completed = subprocess.run(  # noqa: S603 - a configured binary, no shell
            [path, "-hide_banner", "-version"],
            capture_output=True,
            text=True,
            timeout=VERSION_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = (completed.stdout or "").splitlines()[:1]
    words = first[0].split() if first else []
    # "ffmpeg version 6.1.1-3ubuntu5 Copyright ..." -> "ffmpeg 6.1.1-3ubuntu5"
    if len(words) >= 3 and words[1] == "version":
        return f"{name} {words[2]}"
    return f"{name} (unknown version)" if completed.returncode == 0 else None


def report() -> dict[str, str | None]:
    """Each media program with its version (None when missing)."""
    return {name: version(name) for name in TRANSCODE_TOOLS}


def summary() -> str:
    """One line for a start-up log: ``media tools: ffmpeg 6.1.1, ffprobe 6.1.1``."""
    parts = [text or f"{name} MISSING" for name, text in report().items()]
    line = "media tools: " + ", ".join(parts)
    absent = missing()
    return f"{line} ({MediaToolsUnavailable(absent)})" if absent else line


def log_summary() -> None:
    absent = missing()
    (logger.error if absent else logger.info)(summary())


@dataclasses.dataclass
class MediaTools(HealthCheck):
    """ffmpeg and ffprobe can run; the report names them with their versions."""

    found: dict[str, str | None] = dataclasses.field(default_factory=dict, repr=False)

    def run(self) -> None:
        self.found = report()
        absent = [name for name, text in self.found.items() if text is None]
        if absent:
            raise ServiceUnavailable(str(MediaToolsUnavailable(absent)))

    def __repr__(self) -> str:
        found = ", ".join(text or f"{name} missing" for name, text in self.found.items())
        return f"MediaTools({found})" if found else "MediaTools"


def on_worker_setup(sender: Any = None, instance: Any = None, **kwargs: Any) -> None:
    """Celery ``celeryd_after_setup``: a worker without the media tools stops consuming the
    transcoding queue (its jobs wait for a worker that has them) and says why; a worker whose
    only queue that was refuses to start."""
    if instance is None:
        return
    queues = instance.app.amqp.queues
    consumes = set(queues.consume_from or queues)
    absent = missing()
    if not absent:
        logger.info(summary())
        return
    if TRANSCODING_QUEUE not in consumes:
        return
    reason = str(MediaToolsUnavailable(absent))
    if consumes == {TRANSCODING_QUEUE}:
        logger.error("this worker cannot transcode: %s", reason)
        raise SystemExit(f"worker not started: it only consumes '{TRANSCODING_QUEUE}' and {reason}")
    queues.deselect(TRANSCODING_QUEUE)
    logger.error(
        "this worker does not take transcoding jobs (they wait in the '%s' queue for a worker "
        "that can run them): %s",
        TRANSCODING_QUEUE,
        reason,
    )
