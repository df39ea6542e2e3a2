"""Runs the ladder's ffmpeg command, reading its ``-progress`` output as it goes."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence

PR_SET_PDEATHSIG = 1
# ffmpeg errors that mean the input itself is broken: retrying the same file cannot help.
PERMANENT_MARKERS = (
    "invalid data found when processing input",
    "moov atom not found",
    "error while decoding",
    "corrupt",
    "no such file or directory",
    "does not contain any stream",
    "decoding error",
)


class TranscodeError(Exception):
    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class TranscodeTimeout(TranscodeError):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"Transcoding took longer than its limit of {seconds:.0f} s.", permanent=True)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: ffmpeg gets SIGKILL when the worker process that started it dies (a crash or an
    OOM kill), instead of encoding on for nobody."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def run_ffmpeg(
    command: Sequence[str],
    *,
    duration: float,
    on_progress: Callable[[float], None],
    stderr_path: str,
    timeout: float,
) -> None:
    """Runs ``command`` (which writes ``-progress pipe:1``), calling ``on_progress(fraction)``.

    ffmpeg runs in its own process group and is killed whatever happens to this one (an
    exception, a Celery soft time limit), so no encoder outlives its job.
    """
    deadline = time.monotonic() + timeout
    timed_out = threading.Event()
    with open(stderr_path, "wb") as stderr:
        process = subprocess.Popen(  # noqa: S603 - fixed binary, arguments as a list
            list(command),
            stdout=subprocess.PIPE,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )

        def watchdog() -> None:
            while process.poll() is None:
                if time.monotonic() > deadline:
                    timed_out.set()
                    _stop(process)
                    return
                time.sleep(0.5)

        threading.Thread(target=watchdog, daemon=True).start()
        try:
            assert process.stdout is not None
            for raw in process.stdout:
                key, _, value = raw.decode("utf-8", "replace").strip().partition("=")
                # out_time_us (and out_time_ms, despite its name) are microseconds.
                if key == "out_time_us" and value.isdigit() and duration > 0:
                    on_progress(min(1.0, int(value) / 1_000_000 / duration))
            process.wait()
        finally:
            _stop(process)
    if timed_out.is_set():
        raise TranscodeTimeout(timeout)
    if process.returncode != 0:
        with open(stderr_path, "rb") as handle:
            tail = handle.read()[-4000:].decode("utf-8", "replace").strip()
        last = tail.splitlines()[-1] if tail else ""
        if process.returncode < 0:
            # Killed by a signal (out of memory, a node draining): worth another try.
            raise TranscodeError(f"ffmpeg was killed by signal {-process.returncode}.", permanent=False)
        permanent = any(marker in tail.lower() for marker in PERMANENT_MARKERS)
        raise TranscodeError(
            f"ffmpeg failed (exit {process.returncode}): {last or 'no message'}", permanent=permanent
        )
