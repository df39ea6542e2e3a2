"""Celery wrappers for accounts maintenance."""

from __future__ import annotations

from celery import shared_task

from .services import token_purge_expired


@shared_task(name="accounts.tasks.purge_expired_tokens", ignore_result=True)
def purge_expired_tokens() -> int:
    """Meant for a daily beat entry: expired token rows are dead weight."""
    return token_purge_expired()
