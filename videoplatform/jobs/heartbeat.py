"""Worker liveness: a file the worker's event loop keeps fresh, for the pods' liveness probe.

A Celery worker's main process runs one event loop: it reads the broker, hands messages to the
pool processes and fires the timers. When that loop is stuck (a broker socket that hangs, a
deadlock) the process is still there and Kubernetes cannot tell that the pod does nothing.
``Heartbeat``, a consumer bootstep, touches the file named by ``WORKER_HEARTBEAT_FILE`` when
the consumer starts and then every ``INTERVAL`` seconds from the loop's own timer, so the file
stays fresh only while the loop turns. The worker Deployments (k8s/base/workers) set the
variable and an exec probe fails when the file is older than a minute: a cheap check (``stat``),
unlike ``celery inspect ping``, which starts a Celery client and goes through the broker.

The file is removed when the worker starts (a previous container's file, on the pod's
emptyDir, must not vouch for this one) and when it stops. While the consumer reconnects to
the broker the loop does not turn either, so a worker cut off from its broker for longer than
the probe allows is restarted. Without the variable nothing is written (development, tests).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from celery import bootsteps

logger = logging.getLogger(__name__)

ENV_VAR = "WORKER_HEARTBEAT_FILE"
# Seconds between two touches; the probe allows several missed ones (60 s in the Deployments).
INTERVAL = 10.0


def heartbeat_path() -> Path | None:
    """The heartbeat file this process keeps, or None when ``WORKER_HEARTBEAT_FILE`` is unset."""
    value = os.environ.get(ENV_VAR, "")
    return Path(value) if value else None


def beat(path: Path) -> None:
    """Touches ``path``; never raises into the event loop (a stale file is the signal)."""
    try:
        path.touch()
    except OSError:
        logger.warning("could not touch the worker heartbeat file %s", path, exc_info=True)


class Heartbeat(bootsteps.StartStopStep):
    """Consumer bootstep: keeps the heartbeat file fresh from the worker's event loop."""

    # Started once the consumer takes messages from its queues; the event loop runs last.
    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        self.path = heartbeat_path()
        self.enabled = self.path is not None
        self.timer_entry: Any = None
        if self.path is not None:
            self.path.unlink(missing_ok=True)
        super().__init__(parent, **kwargs)

    def start(self, parent: Any) -> None:
        if self.path is None:
            return
        beat(self.path)
        self.timer_entry = parent.timer.call_repeatedly(INTERVAL, beat, (self.path,))

    def stop(self, parent: Any) -> None:
        if self.timer_entry is not None:
            self.timer_entry.cancel()
            self.timer_entry = None

    def shutdown(self, parent: Any) -> None:
        self.stop(parent)
        if self.path is not None:
            self.path.unlink(missing_ok=True)
