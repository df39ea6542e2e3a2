"""Scheduled maintenance of the platform itself (queue ``default``)."""

from __future__ import annotations

import io
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from .models import TaskFailure


@shared_task(name="videoplatform.jobs.tasks.warm_cache", ignore_result=True)
def warm_cache() -> str:
    """Beat, every CACHE_WARM_INTERVAL seconds: ``manage.py warm_cache`` (plans, feed pages, top videos)."""
    output = io.StringIO()
    try:
        call_command("warm_cache", stdout=output, no_color=True)
    except CommandError as exc:  # the cache tiers are off: nothing to warm
        return f"skipped: {exc}"
    lines = [line for line in output.getvalue().splitlines() if line.strip()]
    return lines[-1] if lines else "warmed"


@shared_task(name="videoplatform.jobs.tasks.prune_failures", ignore_result=True)
def prune_failures() -> int:
    """Beat, daily: forgets recorded failures older than JOBS_FAILURES_KEEP_DAYS."""
    cutoff = timezone.now() - timedelta(days=settings.JOBS_FAILURES_KEEP_DAYS)
    deleted, _ = TaskFailure.objects.filter(failed_at__lt=cutoff).delete()
    return deleted
