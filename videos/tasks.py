"""Thin Celery tasks of the catalogue: search indexing (queue ``indexing``), related videos
(queue ``recommendation``) and the daily clean-up (queue ``default``)."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.db import DatabaseError

from videoplatform.jobs.base import JobTask
from videoplatform.jobs.queues import max_retries

from . import maintenance, recommendations, search

RECOMMEND_REFRESH_SOFT_LIMIT = 50 * 60  # the hourly run must end before the next one is due
RECOMMEND_REFRESH_HARD_LIMIT = 55 * 60


@shared_task(
    bind=True,
    base=JobTask,
    name="videos.tasks.index_video",
    max_retries=max_retries("indexing"),
    ignore_result=True,
)
def index_video(self: JobTask, video_id: str) -> int:
    """Rebuilds one video's search document from its current row."""
    try:
        return search.search_index_update(video_ids=[video_id])
    except DatabaseError as exc:
        self.retry_later(exc)


@shared_task(
    bind=True,
    base=JobTask,
    name="videos.tasks.index_sweep",
    max_retries=max_retries("indexing"),
    ignore_result=True,
)
def index_sweep(self: JobTask) -> int:
    """Beat, every 15 minutes: search documents whose indexing job was lost, written again."""
    try:
        return search.search_index_sweep()
    except DatabaseError as exc:
        self.retry_later(exc)


@shared_task(
    bind=True,
    base=JobTask,
    name="videos.tasks.recommend_video",
    max_retries=max_retries("recommendation"),
    ignore_result=True,
)
def recommend_video(self: JobTask, video_id: str) -> int | None:
    """Recomputes the similar part of one video's related videos (after it changed)."""
    try:
        return recommendations.related_update(video_id=video_id)
    except DatabaseError as exc:
        self.retry_later(exc)


@shared_task(
    bind=True,
    base=JobTask,
    name="videos.tasks.recommend_refresh",
    max_retries=max_retries("recommendation"),
    soft_time_limit=RECOMMEND_REFRESH_SOFT_LIMIT,
    time_limit=RECOMMEND_REFRESH_HARD_LIMIT,
)
def recommend_refresh(self: JobTask) -> dict[str, int]:
    """Beat, hourly: co-watch from recent watch history, and stale similar videos."""
    try:
        return recommendations.related_refresh()
    except DatabaseError as exc:
        self.retry_later(exc)


@shared_task(name="videos.tasks.cleanup_abandoned_uploads")
def cleanup_abandoned_uploads() -> dict[str, Any]:
    """Beat, daily: abandoned uploads and stale temporary files."""
    return {
        "uploads_deleted": maintenance.uploads_abandoned_cleanup(),
        "temp_files_removed": maintenance.temp_files_cleanup(),
    }
