"""Writes to the catalogue."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from .models import Video

EDITABLE_FIELDS = ("title", "description", "tags", "privacy", "is_adult", "is_premium")


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
    return Video.objects.create(
        owner_id=owner.pk,
        title=title,
        description=description,
        tags=tags or [],
        privacy=privacy,
        is_adult=is_adult,
        is_premium=is_premium,
    )


@transaction.atomic
def video_update(*, video: Video, changes: dict[str, Any]) -> Video:
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValueError(f"Not editable: {', '.join(sorted(unknown))}")
    for name, value in changes.items():
        setattr(video, name, value)
    if changes:
        video.save(update_fields=[*changes, "updated_at"])
    return video


@transaction.atomic
def video_delete(*, video: Video) -> None:
    video.delete()
