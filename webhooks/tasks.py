"""Thin Celery wrappers for webhooks, all on the ``notification`` queue (videoplatform/jobs/queues.py)."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="webhooks.tasks.deliver", ignore_result=True)
def deliver(delivery_id: str) -> str:
    """One attempt of a delivery. Its retries are scheduled by the service (days, with jitter),
    not by Celery: a failed attempt is a result, not an error of the task."""
    return services.delivery_attempt(delivery_id=delivery_id)


@shared_task(name="webhooks.tasks.requeue_due_deliveries", ignore_result=True)
def requeue_due_deliveries() -> int:
    """Beat, every WEBHOOKS_SWEEP_INTERVAL seconds: messages for due deliveries that have none."""
    return services.deliveries_requeue_due()


@shared_task(name="webhooks.tasks.prune_deliveries", ignore_result=True)
def prune_deliveries() -> int:
    """Beat, daily: forgets completed events older than WEBHOOKS_KEEP_DAYS."""
    return services.deliveries_prune()
