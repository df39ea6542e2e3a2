"""Reads of the media pipeline: what a viewer may stream, and how (the stream endpoint's answer)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings

from videos.models import Video

from . import signing, storage
from .models import MediaFile, Rendition


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


def media_file_for_video(*, video_id: str) -> MediaFile | None:
    return MediaFile.objects.filter(video_id=video_id).first()


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
    media_file = media_file_for_video(video_id=video.pk)
    if media_file is None or media_file.status != MediaFile.Status.READY:
        if media_file is None:
            raise NotReady(video.status, 0)
        raise NotReady(media_file.status, media_file.progress)
    all_renditions = list(Rendition.objects.filter(media_file_id=media_file.pk).order_by("-quality"))
    allowed = [r for r in all_renditions if r.quality <= entitlement.max_resolution]
    if not allowed:
        raise NoAllowedRendition()
    cap = allowed[0].quality
    now = time.time() if now is None else now
    # Long enough to watch the whole video from the start.
    ttl = settings.STREAM_URL_TTL + math.ceil(media_file.duration or 0)
    run_token = media_file.output_prefix.rsplit("/", 1)[-1]
    grant = signing.StreamGrant(video_id=video.pk, run_token=run_token, cap=cap, expires=int(now) + ttl)
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
        return root + name.removeprefix(media_file.output_prefix + "/")

    return StreamManifest(
        video_id=video.pk,
        duration=media_file.duration,
        master_playlist_url=f"{root}master.m3u8",
        renditions=renditions,
        recommended_rendition=recommend(
            renditions, bandwidth if bandwidth is not None else settings.STREAM_DEFAULT_BANDWIDTH
        ),
        max_resolution=entitlement.max_resolution,
        expires_at=grant.expires_at,
        poster_url=image_url(media_file.poster_path) if media_file.poster_path else None,
        thumbnails=[image_url(name) for name in media_file.thumbnail_paths],
        thumbnail_interval=media_file.thumbnail_interval,
        delivery="cdn" if cdn else "app",
    )
