"""Deletions that bypass the services (cascades from a deleted account, the admin's bulk delete,
a queryset deleted in a shell or a management command) refresh the caches all the same."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete

from . import selectors
from .models import Video


def _video_deleted(sender: Any, instance: Video, **kwargs: Any) -> None:
    # A deleted row is cached as absent, and the feed that listed it is dropped, on commit.
    selectors.video_cache_refresh(video_ids=[instance.pk])


def connect() -> None:
    post_delete.connect(_video_deleted, sender=Video, dispatch_uid="videos.video_deleted")
