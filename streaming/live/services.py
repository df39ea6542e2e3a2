"""Writes of live streaming: streams and their keys, and every state change of a broadcast.

Each state change of a session is one function here (``live_publish_authorize``: connected,
``live_session_ready``: active, ``live_publish_done``: disconnected, ``live_session_end``: ended);
each calls ``_event`` once, after its commit, so an outgoing event is a one-line addition there.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import subprocess
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from streaming import ladder, storage
from streaming import services as media_services
from streaming.models import MediaFile
from subscriptions.selectors import viewer_entitlement
from videoplatform import events
from videoplatform.jobs.enqueue import task_named
from videos import services as video_services
from videos.models import Video

from .exceptions import AlreadyEnded, HookForbidden, LiveError, PublishRefused
from .models import LatencyMode, LiveSession, LiveStream

logger = logging.getLogger(__name__)

STREAM_KEY_PREFIX = "sk_live_"
SEGMENT_SECONDS: dict[str, int] = {LatencyMode.STANDARD: 2, LatencyMode.LOW: 1}
MAX_RECONNECT_WINDOW = 1800
# How long the replay waits for the ingest to upload each connection's recording.
RECORDINGS_WAIT = timedelta(minutes=10)


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class RecordingsPending(Exception):
    """Not every connection's recording has arrived yet (the task retries)."""


# --- Keys ------------------------------------------------------------------------------------


def stream_key_new() -> str:
    """A new secret stream key (shown once; only its digest is stored)."""
    return STREAM_KEY_PREFIX + secrets.token_urlsafe(24)


def stream_key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def hook_secret_check(*, secret: str) -> None:
    """Raises ``HookForbidden`` unless ``secret`` is the configured hook secret."""
    expected = settings.LIVE_HOOK_SECRET
    if not expected or not hmac.compare_digest(secret.encode(), expected.encode()):
        raise HookForbidden()


def _event(name: str, session: LiveSession) -> None:
    """A state change: published as a domain event with the transaction (webhooks), and logged
    once committed."""
    events.publish_on_commit(name, session)
    stream_id, session_id, status = session.stream_id, session.pk, session.status

    def send() -> None:
        logger.info(
            "%s: stream %s session %s (%s)",
            name,
            stream_id,
            session_id,
            status,
            extra={"event": name, "live_stream_id": stream_id, "live_session_id": session_id},
        )

    transaction.on_commit(send)


def _enqueue(task_name: str, *args: Any, countdown: float = 0) -> None:
    """The task named ``task_name`` after the commit, possibly later (by name: the tasks import
    this module); a broker that refuses it is logged."""

    def publish() -> None:
        try:
            task_named(task_name).apply_async(args, countdown=countdown)
        except Exception:
            logger.exception("could not enqueue %s", task_name)

    transaction.on_commit(publish)


# --- Streams ---------------------------------------------------------------------------------


@transaction.atomic
def live_stream_create(
    *,
    owner: Any,
    title: str,
    privacy: str = Video.Privacy.PUBLIC,
    latency_mode: str = LatencyMode.STANDARD,
    reconnect_window: int = 60,
    record: bool = True,
) -> tuple[LiveStream, str]:
    """A new live stream and its stream key (the only time the key is returned)."""
    video = video_services.video_create(owner=owner, title=title, privacy=privacy)
    key = stream_key_new()
    stream = LiveStream.objects.create(
        owner_id=owner.pk,
        video=video,
        stream_key_digest=stream_key_digest(key),
        latency_mode=latency_mode,
        reconnect_window=reconnect_window,
        record=record,
    )
    return stream, key


@transaction.atomic
def live_stream_reset_key(*, stream: LiveStream) -> str:
    """A new stream key; the old one stops working at once (a publisher using it is dropped
    at its next update)."""
    locked = LiveStream.objects.select_for_update().get(pk=stream.pk)
    key = stream_key_new()
    locked.stream_key_digest = stream_key_digest(key)
    locked.save(update_fields=["stream_key_digest", "updated_at"])
    stream.stream_key_digest = locked.stream_key_digest
    if locked.session_id is not None:
        session = LiveSession.objects.filter(pk=locked.session_id, publishing=True).first()
        if session is not None:
            transaction.on_commit(lambda: live_publisher_drop(session=session))
    return key


@transaction.atomic
def live_stream_set_enabled(*, stream: LiveStream, enabled: bool) -> None:
    """Disables (refuses publishers, ends a broadcast under way) or enables a stream."""
    locked = LiveStream.objects.select_for_update().get(pk=stream.pk)
    locked.enabled = enabled
    locked.save(update_fields=["enabled", "updated_at"])
    stream.enabled = enabled
    if not enabled and locked.session_id is not None:
        session = LiveSession.objects.filter(pk=locked.session_id, status__in=LiveSession.ACTIVE).first()
        if session is not None:
            live_session_end(session_id=session.pk, reason="disabled")


def concurrent_limit(plan_code: str) -> int:
    """Broadcasts at once for a plan, from LIVE_CONCURRENT_LIMITS ("free:1,premium:3")."""
    limits = {}
    for item in settings.LIVE_CONCURRENT_LIMITS.split(","):
        name, _, value = item.partition(":")
        if value.strip().isdigit():
            limits[name.strip()] = int(value)
    return limits.get(plan_code, limits.get("free", 1))


# --- Publishing: the ingest's hooks ------------------------------------------------------------


def _active_session(stream: LiveStream) -> LiveSession | None:
    return (
        LiveSession.objects.select_for_update()
        .filter(stream_id=stream.pk, status__in=LiveSession.ACTIVE)
        .first()
    )


def live_publish_authorize(
    *, key: str, origin_url: str, client_id: str = "", client_addr: str = ""
) -> LiveSession:
    """``on_publish``: checks the key and the owner's plan, then starts a session or resumes the
    one waiting in its reconnect window. Raises ``PublishRefused``; a refusal writes nothing.

    The session id it returns is what the ingest renames the stream to.
    """
    digest = stream_key_digest(key)
    with transaction.atomic():
        stream = (
            LiveStream.objects.select_for_update()
            .select_related("owner")
            .filter(stream_key_digest=digest)
            .first()
        )
        if stream is None:
            raise PublishRefused("Unknown stream key.")
        if not stream.enabled:
            raise PublishRefused("This live stream is disabled.")
        if not stream.owner.is_active:
            raise PublishRefused("The owner's account is not active.")
        session = _active_session(stream)
        if session is not None and session.publishing:
            raise PublishRefused("Someone is already publishing to this stream.")
        now = timezone.now()
        if session is not None:
            # Back within the reconnect window: the same session, one more connection.
            session.connections += 1
            session.publishing = True
            session.key_digest = digest
            session.origin_url = origin_url or session.origin_url
            session.client_addr = client_addr
            session.client_id = client_id
            session.heartbeat_at = now
            session.disconnected_at = None
            session.save(
                update_fields=[
                    "connections",
                    "publishing",
                    "key_digest",
                    "origin_url",
                    "client_addr",
                    "client_id",
                    "heartbeat_at",
                    "disconnected_at",
                ]
            )
            _event("live.connected", session)
            return session
        plan_code = viewer_entitlement(stream.owner).plan_code
        busy = LiveSession.objects.filter(
            stream__owner_id=stream.owner_id, status__in=LiveSession.ACTIVE
        ).count()
        limit = concurrent_limit(plan_code)
        if busy >= limit:
            raise PublishRefused(f"Your plan allows {limit} live broadcast(s) at once.")
        try:
            with transaction.atomic():
                session = LiveSession.objects.create(
                    stream=stream,
                    video_id=stream.video_id,
                    key_digest=digest,
                    origin_url=origin_url or settings.LIVE_ORIGIN_URL,
                    client_addr=client_addr,
                    client_id=client_id,
                    latency_mode=stream.latency_mode,
                    transcode=plan_code in settings.LIVE_LADDER_PLANS,
                    record=stream.record,
                    heartbeat_at=now,
                    started_at=now,
                )
        except IntegrityError as exc:  # a concurrent publish won the one active session
            raise PublishRefused("Someone is already publishing to this stream.") from exc
        stream.session = session
        stream.save(update_fields=["session", "updated_at"])
        _event("live.connected", session)
        return session


def live_session_config(*, session: LiveSession) -> dict[str, Any]:
    """What the ingest's packager needs to package the session."""
    rungs = []
    if session.transcode:
        rungs = [{"height": height, "video_bitrate": int(peak * 0.8)} for height, peak in ladder.LADDER]
    return {
        "session_id": session.pk,
        "record": session.record,
        "segment_seconds": SEGMENT_SECONDS.get(session.latency_mode, 2),
        "window_segments": settings.LIVE_WINDOW_SEGMENTS,
        "rungs": rungs,
        "preset": settings.LIVE_X264_PRESET,
        "default_bandwidth": settings.STREAM_DEFAULT_BANDWIDTH,
        "fps": 30,
    }


@dataclass(frozen=True)
class RenditionInfo:
    name: str
    width: int
    height: int
    bandwidth: int
    codecs: str


def _clean_renditions(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        raise LiveError("renditions must be a non-empty list.")
    cleaned = []
    for item in raw:
        try:
            rendition = RenditionInfo(
                name=str(item["name"]),
                width=int(item["width"]),
                height=int(item["height"]),
                bandwidth=int(item["bandwidth"]),
                codecs=str(item["codecs"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise LiveError("Each rendition needs name, width, height, bandwidth and codecs.") from exc
        if not (rendition.name == "src" or rendition.name == f"{rendition.height}p"):
            raise LiveError(f"Unexpected rendition name {rendition.name!r}.")
        cleaned.append(rendition.__dict__)
    return cleaned


@transaction.atomic
def live_session_ready(*, session_id: str, renditions: Any) -> LiveSession | None:
    """The packager wrote the first segments: the session is ``live`` (viewers may watch)."""
    cleaned = _clean_renditions(renditions)
    session = LiveSession.objects.select_for_update().filter(pk=session_id).first()
    if session is None or session.status == LiveSession.Status.ENDED:
        return session
    first_time = session.live_at is None
    session.renditions = cleaned
    session.status = LiveSession.Status.LIVE
    session.live_at = session.live_at or timezone.now()
    session.heartbeat_at = timezone.now()
    session.save(update_fields=["renditions", "status", "live_at", "heartbeat_at"])
    # The feeds list the video, marked is_live, while its broadcast is watchable: from the
    # moment it first went on air (newest first), not from when the stream was created.
    video_services.video_live_set(
        video_id=session.video_id, is_live=True, listed_at=session.live_at if first_time else None
    )
    _event("live.active", session)
    return session


def _publishing_session(digest: str, *, origin_url: str, client_id: str) -> LiveSession | None:
    """The active session this ingest connection publishes (a refused publisher's connection
    also reports publish_done: it must not touch the session of the one that was accepted)."""
    return (
        LiveSession.objects.select_for_update()
        .filter(
            status__in=LiveSession.ACTIVE,
            key_digest=digest,
            origin_url=origin_url,
            client_id=client_id,
            publishing=True,
        )
        .select_related("stream")
        .first()
    )


@transaction.atomic
def live_publish_done(*, key: str, origin_url: str, client_id: str) -> LiveSession | None:
    """``on_publish_done``: the publisher left. The session waits for it in ``reconnecting``
    for the stream's reconnect window, then ends (``live_session_expire``)."""
    session = _publishing_session(stream_key_digest(key), origin_url=origin_url, client_id=client_id)
    if session is None:
        return None
    window = session.stream.reconnect_window
    session.publishing = False
    session.disconnected_at = timezone.now()
    if window <= 0:
        session.save(update_fields=["publishing", "disconnected_at"])
        return live_session_end(session_id=session.pk, reason="publisher_left")
    session.status = LiveSession.Status.RECONNECTING
    session.save(update_fields=["publishing", "disconnected_at", "status"])
    _event("live.disconnected", session)
    _enqueue("streaming.live.tasks.expire_session", session.pk, session.connections, countdown=window)
    return session


@transaction.atomic
def live_publish_update(*, key: str, origin_url: str, client_id: str) -> bool:
    """``on_update``: the publisher is alive. False when it must be dropped (the session was
    ended, the stream disabled, or the key it used was rotated)."""
    digest = stream_key_digest(key)
    session = _publishing_session(digest, origin_url=origin_url, client_id=client_id)
    if session is None:
        return False
    stream = session.stream
    if not stream.enabled or stream.stream_key_digest != digest:
        return False
    session.heartbeat_at = timezone.now()
    session.save(update_fields=["heartbeat_at"])
    return True


@transaction.atomic
def live_session_end(*, session_id: str, reason: str) -> LiveSession:
    """Ends a broadcast (the owner, the reconnect window, a stale ingest, a disabled stream).

    The publisher, if any, is dropped; a recorded session's replay is built by a job; the
    stream gets a new video for its next broadcast. Raises ``AlreadyEnded``.
    """
    session = LiveSession.objects.select_for_update().select_related("stream").get(pk=session_id)
    if session.status == LiveSession.Status.ENDED:
        raise AlreadyEnded()
    was_publishing = session.publishing
    session.status = LiveSession.Status.ENDED
    session.publishing = False
    session.ended_at = timezone.now()
    session.end_reason = reason[:40]
    session.replay = LiveSession.Replay.PENDING if session.record else LiveSession.Replay.NONE
    session.save(update_fields=["status", "publishing", "ended_at", "end_reason", "replay"])
    video_services.video_live_set(video_id=session.video_id, is_live=False)
    stream = LiveStream.objects.select_for_update().get(pk=session.stream_id)
    if session.record and stream.video_id == session.video_id:
        video = Video.objects.get(pk=session.video_id)
        stream.video = video_services.video_create(
            owner=stream.owner, title=video.title, privacy=video.privacy
        )
        stream.save(update_fields=["video", "updated_at"])
    if was_publishing:
        transaction.on_commit(lambda: live_publisher_drop(session=session))
    if session.record:
        _enqueue("streaming.live.tasks.build_replay", session.pk)
    _event("live.ended", session)
    return session


def live_session_expire(*, session_id: str, connections: int) -> bool:
    """The reconnect window is over: ends the session unless its publisher came back."""
    with transaction.atomic():
        session = LiveSession.objects.select_for_update().filter(pk=session_id).first()
        if (
            session is None
            or session.status != LiveSession.Status.RECONNECTING
            or session.connections != connections
        ):
            return False
        live_session_end(session_id=session_id, reason="reconnect_window")
    return True


def live_sessions_sweep() -> int:
    """Ends active sessions whose ingest stopped reporting (it died, or lost its publisher
    without telling): GET /api/live/{id} does not show a dead broadcast as live for long."""
    stale_before = timezone.now() - timedelta(seconds=settings.LIVE_STALE_AFTER)
    ended = 0
    for session_id in LiveSession.objects.filter(
        status__in=LiveSession.ACTIVE, heartbeat_at__lt=stale_before
    ).values_list("pk", flat=True):
        with transaction.atomic():
            session = LiveSession.objects.select_for_update().filter(pk=session_id).first()
            if session is None or session.status == LiveSession.Status.ENDED:
                continue
            if session.status == LiveSession.Status.RECONNECTING:
                window = timedelta(seconds=session.stream.reconnect_window)
                if session.disconnected_at and session.disconnected_at + window > timezone.now():
                    continue  # waiting for its publisher: the window decides
            live_session_end(session_id=session_id, reason="stale")
            ended += 1
    return ended


def live_publisher_drop(*, session: LiveSession) -> bool:
    """Asks the session's ingest to drop its publisher now (best effort: the next ``on_update``
    refuses it anyway)."""
    base = session.origin_url.rstrip("/").removesuffix("/live")
    query = urllib.parse.urlencode({"app": "live", "name": session.pk})
    try:
        with urllib.request.urlopen(f"{base}/control/drop/publisher?{query}", timeout=3) as response:  # noqa: S310
            return bool(response.status == 200)
    except OSError as exc:
        logger.warning("could not drop the publisher of %s: %s", session.pk, exc)
        return False


# --- Recordings and the replay ---------------------------------------------------------------


def recording_name(session_id: str, part: str) -> str:
    return f"live/{session_id}/rec/{storage.safe_filename(part)}"


def live_recording_store(*, session_id: str, part: str, body: Readable, size: int | None) -> str | None:
    """Stores one connection's FLV recording uploaded by the ingest (None: not kept, the
    session has no replay)."""
    if size is not None and size > settings.LIVE_RECORDING_MAX_BYTES:
        raise LiveError("The recording is larger than LIVE_RECORDING_MAX_BYTES.")
    if not part.endswith(".flv") or "/" in part:
        raise LiveError("part must be a file name ending in .flv.")
    if not LiveSession.objects.filter(pk=session_id).exists():
        raise LiveError("No such session.")
    if not LiveSession.objects.filter(pk=session_id, record=True).exists():
        return None  # a broadcast without a replay: the ingest deletes its copy
    name = recording_name(session_id, part)
    with tempfile.TemporaryFile() as spool:  # the request stream cannot seek; S3 uploads need to
        while chunk := body.read(1024 * 1024):
            spool.write(chunk)
        spool.seek(0)
        storage.save_file(name, spool, content_type="video/x-flv")
    with transaction.atomic():
        session = LiveSession.objects.select_for_update().get(pk=session_id)
        if name not in session.recordings:
            session.recordings = [*session.recordings, name]
            session.save(update_fields=["recordings"])
    return name


def _concat(parts: list[str], output: str) -> None:
    """Joins the FLV parts (stream copy) into one MP4."""
    with tempfile.TemporaryDirectory(prefix="vp-live-") as work, contextlib.ExitStack() as stack:
        local = []
        for index, name in enumerate(parts):
            part_dir = os.path.join(work, f"{index:04d}")
            os.mkdir(part_dir)
            local.append(stack.enter_context(storage.local_copy(name, part_dir)))
        listing = os.path.join(work, "parts.txt")
        with open(listing, "w", encoding="utf-8") as handle:
            handle.writelines(f"file '{path}'\n" for path in local)
        subprocess.run(  # noqa: S603 - fixed binary, arguments as a list
            [
                settings.FFMPEG_BINARY,
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "concat",
                "-safe",
                "0",
                "-i",
                listing,
                "-c",
                "copy",
                "-movflags",
                "+faststart",
                output,
            ],
            check=True,
            capture_output=True,
            timeout=3600,
        )


def live_replay_build(*, session_id: str) -> str:
    """Joins an ended session's recordings into one MP4 and hands it to the VOD pipeline as the
    session video's source (the transcode job makes the ladder; the video ends ``ready``).

    Raises ``RecordingsPending`` while recordings are still on their way.
    """
    session = LiveSession.objects.get(pk=session_id)
    if session.status != LiveSession.Status.ENDED or session.replay != LiveSession.Replay.PENDING:
        return session.replay
    parts = sorted(session.recordings)
    waited = timezone.now() - (session.ended_at or timezone.now())
    if len(parts) < session.connections and waited < RECORDINGS_WAIT:
        raise RecordingsPending(f"{len(parts)} of {session.connections} recordings")
    if not parts:
        LiveSession.objects.filter(pk=session_id).update(replay=LiveSession.Replay.FAILED)
        return LiveSession.Replay.FAILED
    video = Video.objects.get(pk=session.video_id)
    with tempfile.TemporaryDirectory(prefix="vp-replay-") as work:
        output = os.path.join(work, "replay.mp4")
        try:
            _concat(parts, output)
        except subprocess.CalledProcessError as exc:
            logger.warning("replay of %s failed: %s", session_id, exc.stderr[-500:])
            LiveSession.objects.filter(pk=session_id).update(replay=LiveSession.Replay.FAILED)
            return LiveSession.Replay.FAILED
        name = storage.source_name(video.pk, "replay.mp4")
        with open(output, "rb") as handle:
            storage.save_file(name, handle, content_type="video/mp4")
    with transaction.atomic():
        media_file = MediaFile.objects.select_for_update().filter(video_id=video.pk).first()
        if media_file is None:
            media_file = MediaFile(video=video)
        media_file.source_path = name
        media_file.status = MediaFile.Status.AWAITING_UPLOAD
        media_file.upload_id = ""
        media_file.save()
        LiveSession.objects.filter(pk=session_id).update(replay=LiveSession.Replay.PROCESSING)
    # Probes the joined file and queues the existing transcode (queue "transcoding").
    media_services.media_file_complete_upload(video=video)
    for part in parts:
        storage.delete(part)
    return LiveSession.Replay.PROCESSING
