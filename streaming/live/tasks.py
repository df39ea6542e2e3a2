"""Thin Celery tasks of live streaming (queue ``default``): the work after a broadcast.

The long-lived ffmpeg of a broadcast belongs to the ingest, never to a task.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from . import services

REPLAY_RETRY_SECONDS = 5


@shared_task(name="streaming.live.tasks.expire_session")
def expire_session(session_id: str, connections: int) -> bool:
    """The reconnect window of a session is over (queued when its publisher left)."""
    return services.live_session_expire(session_id=session_id, connections=connections)


@shared_task(
    bind=True,
    name="streaming.live.tasks.build_replay",
    acks_late=True,
    max_retries=int(services.RECORDINGS_WAIT.total_seconds() / REPLAY_RETRY_SECONDS) + 2,
)
def build_replay(self: Any, session_id: str) -> str:
    """Joins an ended session's recordings and queues the VOD transcode of the result."""
    try:
        return services.live_replay_build(session_id=session_id)
    except services.RecordingsPending as exc:
        raise self.retry(exc=exc, countdown=REPLAY_RETRY_SECONDS) from exc


@shared_task(name="streaming.live.tasks.sweep_sessions")
def sweep_sessions() -> int:
    """Ends broadcasts whose ingest stopped reporting (beat, every LIVE_SWEEP_INTERVAL s)."""
    return services.live_sessions_sweep()
