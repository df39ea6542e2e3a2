"""Thin Celery tasks of the media pipeline (queue ``transcoding``; view counts on ``default``)."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from . import analytics, services

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    name="streaming.tasks.transcode_media_file",
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=services.MAX_RETRIES,
)
def transcode_media_file(self: Any, media_file_id: str) -> str:
    """Transcodes one media file. Retries transient failures 3 times (5 s, 10 s, 20 s)."""
    try:
        media_file = services.media_file_transcode(media_file_id=media_file_id)
    except services.MediaBusy:
        # Another worker holds it (a redelivered message while the first run is alive):
        # look again once its heartbeat would have gone stale, without using up a retry.
        transcode_media_file.apply_async(
            (media_file_id,),
            countdown=int(services.HEARTBEAT_STALE.total_seconds()),
            soft_time_limit=self.request.timelimit[1] if self.request.timelimit else None,
            time_limit=self.request.timelimit[0] if self.request.timelimit else None,
        )
        return "busy"
    except services.TransientMediaError as exc:
        if self.request.retries >= self.max_retries:
            services.media_file_mark_failed(
                media_file_id=media_file_id,
                message=f"Gave up after {self.request.retries + 1} attempts: {exc}",
            )
            return "failed"
        raise self.retry(exc=exc, countdown=services.retry_countdown(self.request.retries)) from exc
    except SoftTimeLimitExceeded:
        services.media_file_mark_failed(
            media_file_id=media_file_id, message="Transcoding took longer than its time limit."
        )
        return "failed"
    except Exception:
        logger.exception("transcode of %s failed unexpectedly", media_file_id)
        services.media_file_mark_failed(
            media_file_id=media_file_id, message="An internal error stopped transcoding; see the worker log."
        )
        raise
    return media_file.status if media_file is not None else "skipped"


# Named outside "streaming.tasks.*" so that it is not routed to the transcoding queue, where it
# would wait behind long jobs: it goes to "default".
@shared_task(name="streaming.plays.flush_view_counts")
def flush_view_counts() -> int:
    """Adds the Redis play counts to ``Video.view_count`` (beat, every VIEW_FLUSH_INTERVAL s)."""
    return services.video_views_flush()


# On "default" too (not "streaming.tasks.*"): a few upserts every few minutes.
@shared_task(name="streaming.qoe.rollup")
def rollup_qoe() -> int:
    """Writes the per-video daily QoE totals from Redis to the database (beat, every
    QOE_ROLLUP_INTERVAL s)."""
    return analytics.video_qoe_rollup()
