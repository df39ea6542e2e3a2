"""Celery tasks: thin wrappers over subscriptions.services."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="subscriptions.tasks.expire_lapsed_subscriptions", ignore_result=True)
def expire_lapsed_subscriptions() -> int:
    """Marks subscriptions whose period ended as expired. Meant for beat, e.g. every 5 minutes."""
    return services.subscription_expire_lapsed()
