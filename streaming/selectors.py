"""Reads of the media pipeline: what a viewer may stream, and how (the stream endpoint's answer)."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from django.conf import settings
from django.http import HttpRequest

from videoplatform import cache
from videoplatform.cache import prefetch
from videoplatform.cache.kinds import MEDIA
from videos.models import Video

from . import signing, storage
from .models import MediaFile


# The source's client rule (5.2): > 5 Mb/s → 1080p, 2-5 → 720p, 1-2 → 480p, < 1 → 360p.
def quality_for_bandwidth(bandwidth: int) -> int:
    """The rung the source's rule picks for ``bandwidth`` bits/s."""
    if bandwidth > 5_000_000:
        return 1080
    if bandwidth >= 2_000_000:
        return 720
    if bandwidth >= 1_000_000:
        return 480
    return 360


class NotReady(Exception):
    def __init__(self, status: str, progress: int) -> None:
        super().__init__(status)
        self.status = status
        self.progress = progress


class SubscriptionRequired(Exception):
    """A premium video, and the viewer has no active subscription."""


class NoAllowedRendition(Exception):
    """The viewer's plan allows none of this video's renditions."""


@dataclass(frozen=True)
class StreamRendition:
    quality: int
    width: int
    height: int
    bandwidth: int
    codecs: str
    url: str


@dataclass(frozen=True)
class StreamManifest:
    video_id: str
    duration: float | None
    master_playlist_url: str
    renditions: list[StreamRendition]
    recommended_rendition: StreamRendition
    max_resolution: int
    expires_at: datetime
    poster_url: str | None
    thumbnails: list[str] = field(default_factory=list)
    thumbnail_interval: int | None = None
    delivery: str = "app"


def recommend(renditions: list[StreamRendition], bandwidth: int) -> StreamRendition:
    """The best rendition for ``bandwidth`` among those allowed (highest first): never above the
    rule's pick, and the lowest one when even that is above it."""
    target = quality_for_bandwidth(bandwidth)
    for rendition in renditions:
        if rendition.quality <= target:
            return rendition
    return renditions[-1]


# --- A video's ready ladder: what the stream answer needs of its media file and renditions -------


class Rung(NamedTuple):
    quality: int
    width: int
    height: int
    bandwidth: int
    codecs: str


class Ladder(NamedTuple):
    """A ready media file's outputs: plain, immutable data (the cache tiers hold it as it is)."""

    duration: float | None
    output_prefix: str
    poster_path: str
    thumbnail_paths: tuple[str, ...]
    thumbnail_interval: int | None
    rungs: tuple[Rung, ...]  # highest quality first


class MediaState(NamedTuple):
    status: str
    progress: int
    ladder: Ladder | None  # only when ready


_COLUMNS = (
    "video_id",
    "status",
    "progress",
    "duration",
    "output_prefix",
    "poster_path",
    "thumbnail_paths",
    "thumbnail_interval",
    "renditions__quality",
    "renditions__width",
    "renditions__height",
    "renditions__bandwidth",
    "renditions__codecs",
)


def _media_states(video_ids: list[str], *, using: str | None) -> dict[str, MediaState]:
    """video id -> its media file's state, with the ladder when ready. One statement (the media
    files joined to their renditions), so the ladder is never mixed from two transcode runs."""
    queryset = MediaFile.objects.filter(video_id__in=video_ids)
    if using is not None:
        queryset = queryset.using(using)
    rows: dict[str, list[tuple[Any, ...]]] = {}
    for row in queryset.order_by("video_id", "-renditions__quality").values_list(*_COLUMNS):
        rows.setdefault(row[0], []).append(row)
    states = {}
    for video_id, group in rows.items():
        _, status, progress, duration, prefix, poster, thumbnails, interval = group[0][:8]
        ladder = None
        if status == MediaFile.Status.READY:
            rungs = tuple(Rung(*row[8:]) for row in group if row[8] is not None)
            ladder = Ladder(duration, prefix, poster, tuple(thumbnails or ()), interval, rungs)
        states[video_id] = MediaState(status, progress, ladder)
    return states


def _ready_ladders(video_ids: list[str]) -> dict[str, Ladder | None]:
    """What the ``media`` kind holds per video: its ladder when ready, else None ("ask the
    database": a state that is not ready changes with every progress write, so it is not cached)."""
    states = _media_states(video_ids, using=cache.fill_alias())
    return {video_id: state.ladder for video_id, state in states.items()}


_STREAM_PATH = re.compile(r"^/api/videos/([^/]+)/stream$")


def prefetch_wants(request: HttpRequest) -> list[prefetch.Want]:
    """What a stream request reads from Redis besides the video (``videos.selectors``), for the
    request's one round trip: the ladder, and the viewer's subscription when this process knows
    whose token it is."""
    match = _STREAM_PATH.match(request.path_info)
    if match is None or not cache.active():
        return []
    wants: list[prefetch.Want] = [prefetch.Entry(MEDIA, match[1])]
    from accounts.authentication import request_user_hint

    user_pk = request_user_hint(request) if request.META.get("HTTP_AUTHORIZATION") else None
    if user_pk is not None:
        wants.append(prefetch.Entry(cache.SUBSCRIPTION, user_pk))
    return wants


def media_state(*, video_id: str) -> MediaState | None:
    """The video's media: the ready ladder from the cache tiers (no query once cached), else its
    state from the database; None when the video has no media file."""
    if cache.active():
        ladder = cache.fetch(MEDIA, video_id, lambda: _ready_ladders([video_id]).get(video_id))
        if ladder is not None:
            return MediaState(MediaFile.Status.READY, 100, ladder)
    return _media_states([video_id], using=None).get(video_id)


def media_cache_refresh(*, video_ids: Iterable[str]) -> None:
    """Every write to a media file or its renditions calls this in its transaction: once it
    commits, the videos' ladders are written through to L2 and dropped from every process's L1."""
    cache.refresh_on_commit(MEDIA, list(video_ids), _ready_ladders)


def _is_owner_or_staff(video: Video, viewer: Any) -> bool:
    return bool(viewer.is_authenticated and (viewer.is_staff or viewer.pk == video.owner_id))


def stream_manifest(
    *,
    video: Video,
    viewer: Any,
    entitlement: Any,
    bandwidth: int | None,
    base_url: str,
    now: float | None = None,
) -> StreamManifest:
    """What ``viewer`` gets for ``video``: signed URLs for the renditions their plan allows.

    ``base_url`` is the site's origin (``https://host``). Raises ``SubscriptionRequired``,
    ``NotReady`` or ``NoAllowedRendition``.
    """
    if video.is_premium and not entitlement.has_active_subscription and not _is_owner_or_staff(video, viewer):
        raise SubscriptionRequired()
    state = media_state(video_id=video.pk)
    if state is None:
        raise NotReady(video.status, 0)
    ladder = state.ladder
    if ladder is None:
        raise NotReady(state.status, state.progress)
    allowed = [r for r in ladder.rungs if r.quality <= entitlement.max_resolution]
    if not allowed:
        raise NoAllowedRendition()
    cap = allowed[0].quality
    now = time.time() if now is None else now
    # Long enough to watch the whole video from the start.
    ttl = settings.STREAM_URL_TTL + math.ceil(ladder.duration or 0)
    run_token = ladder.output_prefix.rsplit("/", 1)[-1]
    grant = signing.StreamGrant(
        video_id=video.pk,
        run_token=run_token,
        cap=cap,
        expires=signing.expiry(now, ttl),
        epoch=video.access_epoch,
    )
    root = f"{base_url.rstrip('/')}/media/s/{signing.token_for(grant)}/"
    renditions = [
        StreamRendition(
            quality=r.quality,
            width=r.width,
            height=r.height,
            bandwidth=r.bandwidth,
            codecs=r.codecs,
            url=f"{root}{r.quality}p/index.m3u8",
        )
        for r in allowed
    ]
    cdn = signing.cloudfront_enabled()

    def image_url(name: str) -> str:
        if cdn:
            return signing.cloudfront_url(storage.object_key(name), grant.expires_at)
        return root + name.removeprefix(ladder.output_prefix + "/")

    return StreamManifest(
        video_id=video.pk,
        duration=ladder.duration,
        master_playlist_url=f"{root}master.m3u8",
        renditions=renditions,
        recommended_rendition=recommend(
            renditions, bandwidth if bandwidth is not None else settings.STREAM_DEFAULT_BANDWIDTH
        ),
        max_resolution=entitlement.max_resolution,
        expires_at=grant.expires_at,
        poster_url=image_url(ladder.poster_path) if ladder.poster_path else None,
        thumbnails=[image_url(name) for name in ladder.thumbnail_paths],
        thumbnail_interval=ladder.thumbnail_interval,
        delivery="cdn" if cdn else "app",
    )


def poster_urls(*, videos: Iterable[Video], now: float | None = None) -> dict[str, str]:
    """video id -> a signed, site-relative poster URL, for the pages that list videos (the home
    page). Ready, non-premium videos with a poster only: a premium poster is for subscribers.
    The signature allows the lowest rendition, which anyone may stream of such a video."""
    epochs = {video.pk: video.access_epoch for video in videos if not video.is_premium}
    wanted = list(epochs)
    if not wanted:
        return {}
    if cache.active():
        ladders = cache.fetch_many(MEDIA, wanted, _ready_ladders)
    else:
        ladders = {video_id: state.ladder for video_id, state in _media_states(wanted, using=None).items()}
    now = time.time() if now is None else now
    urls = {}
    for video_id, ladder in ladders.items():
        if ladder is None or not ladder.poster_path or not ladder.rungs:
            continue
        grant = signing.StreamGrant(
            video_id=video_id,
            run_token=ladder.output_prefix.rsplit("/", 1)[-1],
            cap=ladder.rungs[-1].quality,
            expires=signing.expiry(now, settings.STREAM_URL_TTL),
            epoch=epochs[video_id],
        )
        if signing.cloudfront_enabled():
            urls[video_id] = signing.cloudfront_url(storage.object_key(ladder.poster_path), grant.expires_at)
        else:
            name = ladder.poster_path.removeprefix(ladder.output_prefix + "/")
            urls[video_id] = f"/media/s/{signing.token_for(grant)}/{name}"
    return urls
