"""Deletions that bypass the services (a cascade from a deleted account, a queryset deleted in a
shell or a management command) refresh the caches all the same."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete

from . import selectors
from .models import Plan, Subscription


def _subscription_deleted(sender: Any, instance: Subscription, **kwargs: Any) -> None:
    selectors.subscription_cache_refresh(user_ids=[instance.user_id])


def _plan_deleted(sender: Any, instance: Plan, **kwargs: Any) -> None:
    selectors.plan_cache_invalidate()


def connect() -> None:
    post_delete.connect(_subscription_deleted, sender=Subscription, dispatch_uid="subscriptions.deleted")
    post_delete.connect(_plan_deleted, sender=Plan, dispatch_uid="subscriptions.plan_deleted")
