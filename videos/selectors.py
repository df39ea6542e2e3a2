"""Reads of the catalogue: who may see which video, the feed, a user's videos."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet
from django.http import Http404

from videoplatform.api.pagination import PageParams, paginate_queryset

from .models import Video

# API field -> model columns to load for it (field selection loads only these).
FIELD_COLUMNS: dict[str, tuple[str, ...]] = {
    "id": ("id",),
    "title": ("title",),
    "description": ("description",),
    "tags": ("tags",),
    "privacy": ("privacy",),
    "is_adult": ("is_adult",),
    "is_premium": ("is_premium",),
    "status": ("status",),
    "duration": ("duration",),
    "view_count": ("view_count",),
    "owner": ("owner__id", "owner__username", "owner__display_name"),
    "created_at": ("created_at",),
    "updated_at": ("updated_at",),
}
# Always loaded: visibility and permission checks need them.
_ALWAYS = ("id", "owner_id", "privacy", "is_adult", "created_at")


def _with_fields(queryset: QuerySet[Video], fields: Iterable[str] | None) -> QuerySet[Video]:
    if fields is None:
        return queryset.select_related("owner")
    columns = {column for name in fields for column in FIELD_COLUMNS[name]} | set(_ALWAYS)
    if "owner" in fields:
        queryset = queryset.select_related("owner")
    return queryset.only(*columns)


def _sees_adult(viewer: Any) -> bool:
    return bool(viewer.is_authenticated and viewer.show_adult_content)


def _is_staff(viewer: Any) -> bool:
    return bool(viewer.is_authenticated and viewer.is_staff)


def video_visible_q(viewer: Any) -> Q:
    """Videos this viewer may open by id: public and unlisted, their own, adult only if opted in."""
    if _is_staff(viewer):
        return Q()
    visible = Q(privacy__in=[Video.Privacy.PUBLIC, Video.Privacy.UNLISTED])
    if not _sees_adult(viewer):
        visible &= Q(is_adult=False)
    if viewer.is_authenticated:
        visible |= Q(owner_id=viewer.pk)
    return visible


def video_get(*, video_id: str, viewer: Any, fields: Iterable[str] | None = None) -> Video:
    """A video the viewer may see, or 404 (a private video's existence is not revealed)."""
    queryset = _with_fields(Video.objects.filter(video_visible_q(viewer)), fields)
    video = queryset.filter(pk=video_id).first()
    if video is None:
        raise Http404("No such video.")
    return video


def video_list_public(
    *, viewer: Any, params: PageParams, fields: Iterable[str] | None = None
) -> tuple[list[Video], int]:
    """The public feed, newest first; served by the partial index ``videos_public_feed_idx``."""
    queryset = Video.objects.filter(privacy=Video.Privacy.PUBLIC)
    if not _sees_adult(viewer):
        queryset = queryset.filter(is_adult=False)
    return paginate_queryset(_with_fields(queryset.order_by("-created_at", "-id"), fields), params)


def video_list_for_user(
    *, user_id: str, viewer: Any, params: PageParams, fields: Iterable[str] | None = None
) -> tuple[list[Video], int]:
    """A user's videos, newest first: all of them for the owner (and staff), public ones for others."""
    if not get_user_model()._default_manager.filter(pk=user_id, is_active=True).exists():
        raise Http404("No such user.")
    queryset = Video.objects.filter(owner_id=user_id)
    if not (_is_staff(viewer) or (viewer.is_authenticated and viewer.pk == user_id)):
        queryset = queryset.filter(privacy=Video.Privacy.PUBLIC)
        if not _sees_adult(viewer):
            queryset = queryset.filter(is_adult=False)
    return paginate_queryset(_with_fields(queryset.order_by("-created_at", "-id"), fields), params)
