"""The beat schedule, defined here in code (one beat process runs it; docs/jobs.md).

Every message beat sends carries the header ``vp_beat_entry`` with its entry's name, so the
worker that runs it records the run (``recording``) and staff see the last run of each entry
in the admin (Background jobs → Scheduled jobs). A run still waiting when the next one is due
expires unrun: a backlog never piles up copies of the same maintenance.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from celery.schedules import crontab, schedule
from django.conf import settings

from .queues import queue_for
from .recording import BEAT_HEADER

HOUR = 3600
DAY = 24 * HOUR


@dataclass(frozen=True)
class ScheduledJob:
    name: str
    task: str
    schedule: Any  # a celery schedule or crontab
    summary: str
    expires: float

    @property
    def queue(self) -> str:
        return queue_for(self.task)

    @property
    def every(self) -> str:
        """The schedule in words, for staff."""
        value = self.schedule
        if isinstance(value, crontab):
            return _crontab_text(value)
        if isinstance(value, schedule):
            return _interval_text(value.run_every)
        return str(value)

    def beat_entry(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "schedule": self.schedule,
            "options": {"queue": self.queue, "expires": self.expires, "headers": {BEAT_HEADER: self.name}},
        }


def _interval_text(every: timedelta) -> str:
    seconds = int(every.total_seconds())
    if seconds % HOUR == 0:
        return f"every {seconds // HOUR} h"
    if seconds % 60 == 0:
        return f"every {seconds // 60} min"
    return f"every {seconds} s"


def _crontab_text(value: crontab) -> str:
    minute, hour = value._orig_minute, value._orig_hour
    if str(hour) == "*":
        return f"hourly at minute {minute}"
    return f"daily at {int(hour):02d}:{int(minute):02d} UTC"


def scheduled_jobs() -> list[ScheduledJob]:
    """Every scheduled job, in the order staff read them."""
    flush = float(settings.VIEW_FLUSH_INTERVAL)
    warm = float(settings.CACHE_WARM_INTERVAL)
    sweep = float(settings.WEBHOOKS_SWEEP_INTERVAL)
    return [
        ScheduledJob(
            # The media pipeline's entry (name and task are theirs): play counts wait in Redis
            # and reach Video.view_count in batches.
            name="streaming-flush-view-counts",
            task="streaming.plays.flush_view_counts",
            schedule=schedule(timedelta(seconds=flush)),
            summary="Add buffered play counts to the videos' view counts.",
            expires=flush,
        ),
        ScheduledJob(
            name="streaming-qoe-rollup",
            task="streaming.qoe.rollup",
            schedule=schedule(timedelta(seconds=settings.QOE_ROLLUP_INTERVAL)),
            summary="Write each video's daily playback quality (from the players' beacons) for its owner.",
            expires=float(settings.QOE_ROLLUP_INTERVAL),
        ),
        ScheduledJob(
            name="live-sweep-sessions",
            task="streaming.live.tasks.sweep_sessions",
            schedule=schedule(timedelta(seconds=settings.LIVE_SWEEP_INTERVAL)),
            summary="End live broadcasts whose ingest stopped reporting (a dead ingest or publisher).",
            expires=float(settings.LIVE_SWEEP_INTERVAL),
        ),
        ScheduledJob(
            name="streaming-media-sweep",
            task="streaming.media.sweep",
            schedule=crontab(minute=41),
            summary="Remove stored media of deleted videos; enqueue again transcodes whose message was lost.",
            expires=HOUR,
        ),
        ScheduledJob(
            name="cache-warm",
            task="videoplatform.jobs.tasks.warm_cache",
            schedule=schedule(timedelta(seconds=warm)),
            summary="Warm the cache: plans, the first feed pages, the most-viewed videos.",
            expires=warm,
        ),
        ScheduledJob(
            name="emails-resend-stale",
            task="accounts.tasks.send_stale_emails",
            schedule=schedule(timedelta(minutes=15)),
            summary="Enqueue again the emails still queued an hour after they were recorded (a lost job).",
            expires=15 * 60,
        ),
        ScheduledJob(
            name="search-index-sweep",
            task="videos.tasks.index_sweep",
            schedule=schedule(timedelta(minutes=15)),
            summary="Write again the search documents whose indexing job was lost.",
            expires=15 * 60,
        ),
        ScheduledJob(
            name="recommendations-refresh",
            task="videos.tasks.recommend_refresh",
            schedule=crontab(minute=17),
            summary="Recompute related videos from watch history (co-watch) and similarity.",
            expires=HOUR,
        ),
        ScheduledJob(
            name="subscriptions-expire-lapsed",
            task="subscriptions.tasks.expire_lapsed_subscriptions",
            schedule=crontab(hour=0, minute=5),
            summary="Mark subscriptions whose period has ended as expired.",
            expires=12 * HOUR,
        ),
        ScheduledJob(
            name="accounts-purge-expired-tokens",
            task="accounts.tasks.purge_expired_tokens",
            schedule=crontab(hour=3, minute=0),
            summary="Delete expired bearer-token rows.",
            expires=12 * HOUR,
        ),
        ScheduledJob(
            name="uploads-cleanup",
            task="videos.tasks.cleanup_abandoned_uploads",
            schedule=crontab(hour=3, minute=30),
            summary="Delete abandoned uploads (and their partial files) and stale temporary files.",
            expires=12 * HOUR,
        ),
        ScheduledJob(
            name="webhooks-requeue-due",
            task="webhooks.tasks.requeue_due_deliveries",
            schedule=schedule(timedelta(seconds=sweep)),
            summary="Send webhook deliveries whose retry is due (or whose message was lost).",
            expires=sweep,
        ),
        ScheduledJob(
            name="webhooks-prune",
            task="webhooks.tasks.prune_deliveries",
            schedule=crontab(hour=4, minute=30),
            summary="Forget completed webhook events older than WEBHOOKS_KEEP_DAYS.",
            expires=12 * HOUR,
        ),
        ScheduledJob(
            name="jobs-prune-failures",
            task="videoplatform.jobs.tasks.prune_failures",
            schedule=crontab(hour=4, minute=0),
            summary="Forget recorded task failures older than JOBS_FAILURES_KEEP_DAYS.",
            expires=12 * HOUR,
        ),
    ]


def beat_schedule() -> dict[str, dict[str, Any]]:
    return {job.name: job.beat_entry() for job in scheduled_jobs()}


def scheduled_job(name: str) -> ScheduledJob | None:
    return next((job for job in scheduled_jobs() if job.name == name), None)
