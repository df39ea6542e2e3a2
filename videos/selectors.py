"""Reads of the catalogue: who may see which video, the feed, a user's videos."""

from __future__ import annotations

import re
from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from accounts.types import Viewer
from videoplatform import cache
from videoplatform.api.pagination import PageParams, paginate_queryset
from videoplatform.cache import prefetch
from videoplatform.errors import NotFound

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
    "is_live": ("is_live",),
    "owner": ("owner__id", "owner__username", "owner__display_name"),
    "created_at": ("created_at",),
    "updated_at": ("updated_at",),
}
# Always loaded: visibility and permission checks need them (and signed media links the epoch).
_ALWAYS = ("id", "owner_id", "privacy", "is_adult", "created_at", "access_epoch")


def _with_fields(queryset: QuerySet[Video], fields: Iterable[str] | None) -> QuerySet[Video]:
    if fields is None:
        return queryset.select_related("owner")
    columns = {column for name in fields for column in FIELD_COLUMNS[name]} | set(_ALWAYS)
    if "owner" in fields:
        queryset = queryset.select_related("owner")
    return queryset.only(*columns)


def _sees_adult(viewer: Viewer) -> bool:
    return bool(viewer.is_authenticated and viewer.show_adult_content)


def _is_staff(viewer: Viewer) -> bool:
    return bool(viewer.is_authenticated and viewer.is_staff)


def watchable_q() -> Q:
    """What a feed lists: ready videos, and videos whose live broadcast is on now (``is_live``)."""
    return Q(status=Video.Status.READY) | Q(is_live=True)


def video_visible_q(viewer: Viewer) -> Q:
    """Videos this viewer may open by id: public and unlisted, their own, adult only if opted in."""
    if _is_staff(viewer):
        return Q()
    visible = Q(privacy__in=[Video.Privacy.PUBLIC, Video.Privacy.UNLISTED])
    if not _sees_adult(viewer):
        visible &= Q(is_adult=False)
    if viewer.is_authenticated:
        visible |= Q(owner_id=viewer.pk)
    return visible


def _visible(viewer: Viewer, video: Video) -> bool:
    """``video_visible_q`` for one loaded video: the cached path checks the cached row with it."""
    if _is_staff(viewer) or (viewer.is_authenticated and video.owner_id == viewer.pk):
        return True
    if video.privacy not in (Video.Privacy.PUBLIC, Video.Privacy.UNLISTED):
        return False
    return not video.is_adult or _sees_adult(viewer)


# The prefetch's hint from a video to its owner: their profile is read in the same round trip.
OWNER_HINT = "video_owner"
_VIDEO_PATH = re.compile(r"^/api/videos/([^/]+)(/stream)?$")


def prefetch_wants(request: HttpRequest) -> list[prefetch.Want]:
    """What a video's detail or stream request reads from Redis, for the request's one round
    trip (``videoplatform.cache.prefetch``): the video's entry, its owner's profile when this
    process knows the owner, and the throttle's count."""
    match = _VIDEO_PATH.match(request.path_info)
    if match is None or not cache.active():
        return []
    video_id = match[1]
    wants: list[prefetch.Want] = [prefetch.Entry(cache.VIDEO, video_id)]
    owner = prefetch.hinted(OWNER_HINT, video_id)
    if owner is not None and match[2] is None:
        wants.append(prefetch.Entry(cache.USER, owner))
    from accounts.authentication import request_user_hint
    from videoplatform.api.throttling import prefetch_count

    # Counted as the throttle will count it: per user for a token whose user is known here,
    # per address for a request with no credentials at all.
    if request.META.get("HTTP_AUTHORIZATION"):
        user_pk = request_user_hint(request)
        count = prefetch_count(request, user_pk=user_pk) if user_pk is not None else None
    elif request.COOKIES:
        count = None  # a session may authenticate it: the throttle decides
    else:
        count = prefetch_count(request, user_pk=None)
    if count is not None:
        wants.append(count)
    return wants


def video_get(*, video_id: str, viewer: Viewer, fields: Iterable[str] | None = None) -> Video:
    """A video the viewer may see, or 404 (a private video's existence is not revealed)."""
    if cache.active():  # the row is cached whoever asks; who may see it is decided here, each time
        row = cache.fetch(cache.VIDEO, video_id, lambda: _video_rows([video_id]).get(video_id))
        video = cache.restore(Video, row) if row is not None else None
        if video is None or not _visible(viewer, video):
            raise NotFound()
        prefetch.hint(OWNER_HINT, video.pk, str(video.owner_id))
        if fields is None or "owner" in fields:
            _attach_owners([video])
        return video
    queryset = _with_fields(Video.objects.filter(video_visible_q(viewer)), fields)
    video = queryset.filter(pk=video_id).first()
    if video is None:
        raise NotFound()
    return video


def video_access_epoch(*, video_id: str) -> int | None:
    """The video's access epoch (what signed media links carry), or None when it is gone. From
    the cache tiers when active (no query once cached), else one query where cache fills read."""
    if cache.active():
        row = cache.fetch(cache.VIDEO, video_id, lambda: _video_rows([video_id]).get(video_id))
        return None if row is None else cache.restore(Video, row).access_epoch
    epoch = (
        Video.objects.using(cache.fill_alias())
        .filter(pk=video_id)
        .values_list("access_epoch", flat=True)
        .first()
    )
    return None if epoch is None else int(epoch)


def video_list_public(
    *, viewer: Viewer, params: PageParams, fields: Iterable[str] | None = None
) -> tuple[list[Video], int]:
    """The public feed, newest first; served by the partial index ``videos_public_feed_idx``.

    Only what a viewer can play: ready videos and live broadcasts under way (``is_live``;
    uploads in progress, failed ones and metadata without a file stay on their owner's own list).
    """
    if cache.active():  # one entry per page, limit, field selection and adult preference
        adult = _sees_adult(viewer)
        selected = ",".join(sorted(fields)) if fields is not None else "*"
        rows, total = cache.fetch(
            cache.FEED,
            FEED_SCOPE,
            lambda: _feed_rows(adult=adult, params=params, fields=fields),
            variant=f"p{params.page}:l{params.limit}:a{int(adult)}:f={selected}",
        )
        videos = [cache.restore(Video, row) for row in rows]
        if fields is None or "owner" in fields:
            _attach_owners(videos)
        return videos, total
    queryset = Video.objects.filter(watchable_q(), privacy=Video.Privacy.PUBLIC)
    if not _sees_adult(viewer):
        queryset = queryset.filter(is_adult=False)
    return paginate_queryset(_with_fields(queryset.order_by("-created_at", "-id"), fields), params)


def video_list_for_user(
    *, user_id: str, viewer: Viewer, params: PageParams, fields: Iterable[str] | None = None
) -> tuple[list[Video], int]:
    """A user's videos, newest first: all of them for the owner (and staff), public ready (or
    live) ones for others."""
    if not get_user_model()._default_manager.filter(pk=user_id, is_active=True).exists():
        raise NotFound()
    queryset = Video.objects.filter(owner_id=user_id)
    if not (_is_staff(viewer) or (viewer.is_authenticated and viewer.pk == user_id)):
        # "Not private or unlisted" rather than "= public": the same rows, but the planner cannot
        # match the feed's partial index to it and takes (owner_id, created_at DESC), which fits a
        # single owner's list best.
        queryset = queryset.exclude(privacy__in=[Video.Privacy.PRIVATE, Video.Privacy.UNLISTED]).filter(
            watchable_q()
        )
        if not _sees_adult(viewer):
            queryset = queryset.filter(is_adult=False)
    return paginate_queryset(_with_fields(queryset.order_by("-created_at", "-id"), fields), params)


# --- Cache tiers: what the cached paths above load, and what every write to videos calls -------
FEED_SCOPE = "public"


def _video_rows(video_ids: list[str]) -> dict[str, cache.Snapshot]:
    # From a replica that has replayed the scope's last invalidation, else the primary (a
    # lagging replica's row must not be frozen into a cache entry); the refresh: the primary.
    # The query is compiled once per shape (``rows_by_pk``): the same rows as the ORM's.
    return {v.pk: cache.snapshot(v) for v in cache.rows_by_pk(Video, cache.fill_alias(), video_ids)}


def _feed_rows(
    *, adult: bool, params: PageParams, fields: Iterable[str] | None
) -> tuple[list[cache.Snapshot], int]:
    """video_list_public's page, as snapshots (owners come from their own cache); read where
    ``cache.fill_alias()`` says: a replica that has replayed the feed's last invalidation."""
    queryset = Video.objects.using(cache.fill_alias())
    queryset = queryset.filter(watchable_q(), privacy=Video.Privacy.PUBLIC)
    if not adult:
        queryset = queryset.filter(is_adult=False)
    queryset = queryset.order_by("-created_at", "-id")
    if fields is not None:
        queryset = _with_fields(queryset, [name for name in fields if name != "owner"])
    videos, total = paginate_queryset(queryset, params)
    return [cache.snapshot(video) for video in videos], total


def _attach_owners(videos: list[Video]) -> None:
    from accounts.selectors import user_profiles_get_many

    owners = user_profiles_get_many(user_ids=[video.owner_id for video in videos])
    for video in videos:
        if video.owner_id in owners:
            video.owner = owners[video.owner_id]


def video_cache_refresh(*, video_ids: Iterable[str], feed: bool = True) -> None:
    """After the current transaction commits, these videos' rows are written through to L2 and
    dropped from every process's L1 (a deleted row is cached as absent); with ``feed``, the public
    feed's pages go too (for a video that is, or was, public)."""
    cache.refresh_on_commit(cache.VIDEO, video_ids, _video_rows)
    if feed:
        cache.invalidate_on_commit(cache.FEED, [FEED_SCOPE])
