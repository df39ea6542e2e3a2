"""Platform-level tasks."""

from __future__ import annotations

import socket

from celery import shared_task


@shared_task(name="videoplatform.tasks.ping")
def ping() -> dict[str, str]:
    """A round trip through the broker and a worker (used by smoke tests and operators)."""
    return {"status": "pong", "host": socket.gethostname()}
