"""Reads of live streaming: who may see a live stream, and the signed stream answer for it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import QuerySet

from streaming import plays, signing
from streaming.models import MediaFile
from streaming.selectors import (
    NoAllowedRendition,
    StreamManifest,
    StreamRendition,
    SubscriptionRequired,
    recommend,
)
from videos.models import Video

from .exceptions import LiveNotFound, NotLive
from .models import LiveSession, LiveStream

SOURCE = "src"
VIEWER_WINDOW = 30  # seconds: a viewer counts while its player fetched a playlist this recently
WATCHABLE = (LiveSession.Status.LIVE, LiveSession.Status.RECONNECTING)


def _is_owner_or_staff(stream: LiveStream, viewer: Any) -> bool:
    return bool(viewer.is_authenticated and (viewer.is_staff or viewer.pk == stream.owner_id))


def _streams() -> QuerySet[LiveStream]:
    # Every read of a live stream goes to the primary: its state changes every few seconds.
    return LiveStream.objects.using("default").select_related("video", "session")


def live_stream_get(*, live_id: str, viewer: Any) -> LiveStream:
    """The live stream if ``viewer`` may see it (private ones only to their owner and staff).
    Raises ``LiveNotFound``."""
    stream = _streams().filter(pk=live_id).first()
    if stream is None:
        raise LiveNotFound()
    if stream.video.privacy == Video.Privacy.PRIVATE and not _is_owner_or_staff(stream, viewer):
        raise LiveNotFound()
    return stream


def live_stream_get_owned(*, live_id: str, user: Any) -> LiveStream:
    """The live stream if ``user`` owns it (or is staff); others get ``LiveNotFound``."""
    stream = _streams().filter(pk=live_id).first()
    if stream is None or not _is_owner_or_staff(stream, user):
        raise LiveNotFound()
    return stream


def live_stream_id_for_video(*, video_id: str) -> str | None:
    """The live stream whose next (or current) broadcast is ``video_id``: the watch page of a
    video that is a live sends its viewers to the live player."""
    return LiveStream.objects.filter(video_id=video_id).values_list("pk", flat=True).first()


def live_streams_of_user(*, user_id: str, viewer: Any) -> list[LiveStream]:
    """A user's live streams the viewer may see, broadcasting ones first."""
    streams = list(_streams().filter(owner_id=user_id).order_by("-created_at")[:100])
    visible = [
        stream
        for stream in streams
        if stream.video.privacy == Video.Privacy.PUBLIC or _is_owner_or_staff(stream, viewer)
    ]
    return sorted(visible, key=lambda stream: stream.status not in WATCHABLE)


def replay_status(*, stream: LiveStream) -> str | None:
    """The last broadcast's replay: none, pending, processing, ready or failed."""
    session = stream.session
    if session is None or session.status != LiveSession.Status.ENDED:
        return None
    if session.replay != LiveSession.Replay.PROCESSING:
        return session.replay
    media_status = (
        MediaFile.objects.filter(video_id=session.video_id).values_list("status", flat=True).first()
    )
    return {"ready": "ready", "failed": "failed"}.get(media_status or "", "processing")


# --- Viewers ---------------------------------------------------------------------------------


def _viewers_key(session_id: str) -> str:
    return f"vp:live:viewers:{session_id}"


def live_viewer_seen(*, session_id: str, viewer: str, now: float | None = None) -> None:
    """Counts ``viewer`` (one signed grant) as watching ``session_id`` now."""
    client = plays.counter_client()
    if client is None:
        return
    now = time.time() if now is None else now
    key = _viewers_key(session_id)
    pipe = client.pipeline(transaction=False)
    pipe.zadd(key, {viewer: now})
    pipe.zremrangebyscore(key, 0, now - VIEWER_WINDOW)
    pipe.expire(key, VIEWER_WINDOW * 4)
    pipe.execute()


def live_viewer_count(*, session_id: str, now: float | None = None) -> int:
    client = plays.counter_client()
    if client is None:
        return 0
    now = time.time() if now is None else now
    return int(client.zcount(_viewers_key(session_id), now - VIEWER_WINDOW, "+inf"))


# --- The stream answer -------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveManifest:
    manifest: StreamManifest
    latency_mode: str
    status: str
    session_id: str


def _quality(rendition: dict[str, Any]) -> int:
    return min(int(rendition["width"]), int(rendition["height"]))


def live_stream_manifest(
    *,
    stream: LiveStream,
    viewer: Any,
    entitlement: Any,
    bandwidth: int | None,
    base_url: str,
    now: float | None = None,
) -> LiveManifest:
    """Signed URLs of the broadcast under way, for the renditions the viewer's plan allows.

    Raises ``NotLive`` (not live or reconnecting), ``SubscriptionRequired``, ``NoAllowedRendition``.
    """
    session = stream.session
    if session is None or session.status not in WATCHABLE or not session.renditions:
        status = "idle" if session is None else session.status
        raise NotLive("connecting" if status in WATCHABLE else status)
    if (
        stream.video.is_premium
        and not entitlement.has_active_subscription
        and not _is_owner_or_staff(stream, viewer)
    ):
        raise SubscriptionRequired()
    rungs = sorted(session.renditions, key=_quality, reverse=True)
    allowed = [r for r in rungs if _quality(r) <= entitlement.max_resolution]
    if not allowed:
        raise NoAllowedRendition()
    cap = _quality(allowed[0])
    now = time.time() if now is None else now
    grant = signing.StreamGrant(
        video_id=stream.video_id,
        run_token=session.pk,
        cap=cap,
        expires=int(now) + settings.STREAM_URL_TTL,
        epoch=stream.video.access_epoch,
    )
    root = f"{base_url.rstrip('/')}/live/s/{signing.token_for(grant)}/"
    renditions = [
        StreamRendition(
            quality=_quality(r),
            width=int(r["width"]),
            height=int(r["height"]),
            bandwidth=int(r["bandwidth"]),
            codecs=str(r["codecs"]),
            url=f"{root}{r['name']}/index.m3u8",
        )
        for r in allowed
    ]
    manifest = StreamManifest(
        video_id=stream.video_id,
        duration=None,
        master_playlist_url=f"{root}master.m3u8",
        renditions=renditions,
        recommended_rendition=recommend(
            renditions, bandwidth if bandwidth is not None else settings.STREAM_DEFAULT_BANDWIDTH
        ),
        max_resolution=entitlement.max_resolution,
        expires_at=grant.expires_at,
        poster_url=None,
        delivery="app",
    )
    return LiveManifest(
        manifest=manifest, latency_mode=session.latency_mode, status=session.status, session_id=session.pk
    )


def master_playlist(*, session: LiveSession, cap: int) -> str:
    """The live master playlist: the session's renditions up to ``cap``, highest first."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for rendition in sorted(session.renditions, key=_quality, reverse=True):
        if _quality(rendition) > cap:
            continue
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={int(rendition['bandwidth'])},"
            f"RESOLUTION={int(rendition['width'])}x{int(rendition['height'])},"
            f'CODECS="{rendition["codecs"]}"'
        )
        lines.append(f"{rendition['name']}/index.m3u8")
    return "\n".join(lines) + "\n"


def session_for_grant(*, grant: signing.StreamGrant) -> LiveSession | None:
    """The session a live token names, if it belongs to the token's video."""
    return (
        LiveSession.objects.using("default")
        .filter(pk=grant.run_token, video_id=grant.video_id)
        .only("id", "video_id", "status", "renditions", "origin_url")
        .first()
    )
