"""Writes to the catalogue."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from videoplatform import events

from . import selectors
from .models import Video

EDITABLE_FIELDS = ("title", "description", "tags", "privacy", "is_adult", "is_premium")
# Who may watch: a change revokes the media links signed before it (streaming checks the epoch).
ACCESS_FIELDS = frozenset({"privacy", "is_adult", "is_premium"})
# What the search document and the similar videos are made of (visibility is read at query time).
SEARCHED_FIELDS = frozenset({"title", "description", "tags"})


@transaction.atomic
def video_create(
    *,
    owner: Any,
    title: str,
    description: str = "",
    tags: list[str] | None = None,
    privacy: str = Video.Privacy.PUBLIC,
    is_adult: bool = False,
    is_premium: bool = False,
) -> Video:
    video = Video.objects.create(
        owner_id=owner.pk,
        title=title,
        description=description,
        tags=tags or [],
        privacy=privacy,
        is_adult=is_adult,
        is_premium=is_premium,
    )
    selectors.video_cache_refresh(video_ids=[video.pk], feed=_in_feed(video))
    video_derived_data_refresh(video_id=video.pk)
    events.publish_on_commit("video.created", video)
    return video


def _in_feed(video: Video) -> bool:
    return video.privacy == Video.Privacy.PUBLIC and (video.status == Video.Status.READY or video.is_live)


@transaction.atomic
def video_update(*, video: Video, changes: dict[str, Any]) -> Video:
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValueError(f"Not editable: {', '.join(sorted(unknown))}")
    was_in_feed = _in_feed(video)
    access_changed = any(getattr(video, name) != changes[name] for name in ACCESS_FIELDS & set(changes))
    for name, value in changes.items():
        setattr(video, name, value)
    if access_changed:
        video.access_epoch += 1
    if changes:
        video.save(update_fields=[*changes, *(["access_epoch"] if access_changed else []), "updated_at"])
        selectors.video_cache_refresh(video_ids=[video.pk], feed=was_in_feed or _in_feed(video))
        if SEARCHED_FIELDS & set(changes):
            video_derived_data_refresh(video_id=video.pk)
    return video


@transaction.atomic
def video_delete(*, video: Video) -> None:
    video_id, in_feed = video.pk, _in_feed(video)
    events.publish_on_commit("video.deleted", video)  # rendered now, while the row exists
    video.delete()
    selectors.video_cache_refresh(video_ids=[video_id], feed=in_feed)


def video_media_state_set(*, video_id: str, status: str, duration: float | None = None) -> None:
    """Mirrors the media pipeline's state on the video (the catalogue shows it; feeds filter on it).

    A plain UPDATE: the pipeline calls it inside its own transaction, and it must not read the row.
    """
    if status not in Video.Status.values:
        raise ValueError(f"Unknown video status: {status}")
    changes: dict[str, Any] = {"status": status, "updated_at": timezone.now()}
    if duration is not None:
        changes["duration"] = duration
    Video.objects.filter(pk=video_id).update(**changes)
    selectors.video_cache_refresh(video_ids=[video_id])


def video_live_set(*, video_id: str, is_live: bool, listed_at: datetime | None = None) -> None:
    """Marks the video as broadcasting live now, or no longer (the live services call it as a
    broadcast becomes watchable and when it ends). ``listed_at`` moves its place in the
    newest-first lists (``created_at``): a broadcast is listed from when it went on air, not
    from when its video was set aside for it. A plain UPDATE inside the caller's transaction;
    the video's cached row and the feed's pages are refreshed after the commit."""
    changes: dict[str, Any] = {"is_live": is_live, "updated_at": timezone.now()}
    if listed_at is not None:
        changes["created_at"] = listed_at
    if Video.objects.filter(pk=video_id).exclude(is_live=is_live).update(**changes):
        selectors.video_cache_refresh(video_ids=[video_id])


# --- Search document and related videos: rebuilt by jobs after the commit --------------------


def video_derived_data_refresh(*, video_id: str) -> None:
    """After the commit: the ``indexing`` job rebuilds the search document, the
    ``recommendation`` job the similar videos. A rolled-back write queues nothing. (A deleted
    video's document and related videos go with its row, in the same transaction.)"""
    from videoplatform.jobs.enqueue import enqueue_on_commit

    # By name: the tasks import this module (through videos.maintenance).
    enqueue_on_commit("videos.tasks.index_video", video_id)
    enqueue_on_commit("videos.tasks.recommend_video", video_id)
