"""Writes of the media pipeline: upload intake, the transcode run, plays and view counts."""

from __future__ import annotations

import hashlib
import logging
import math
import os
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import DatabaseError, connection, transaction
from django.db.models import Case, F, IntegerField, Value, When
from django.utils import timezone

from videoplatform import events
from videos import services as video_services
from videos.models import Video

from . import ladder, limits, media_tools, plays, selectors, sessions, storage
from .models import MediaFile, Rendition, WatchEvent
from .probe import InvalidMedia, ProbeFailed, ProbeResult, measure_duration, probe
from .transcoder import TranscodeError, run_ffmpeg

logger = logging.getLogger(__name__)

# A run touches heartbeat_at at least this often while ffmpeg reports progress...
HEARTBEAT_EVERY = 10.0
# ...so a "processing" media file whose heartbeat is older than this has lost its worker.
HEARTBEAT_STALE = timedelta(seconds=120)
RETRY_BASE_SECONDS = 5
MAX_RETRIES = 3
# Runs of one upload, whatever ended them: a file that kills its worker every time (a message
# requeued after each crash) must not loop forever.
MAX_RUNS = 6


class UploadTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"The file is larger than the limit of {limit} bytes.")
        self.limit = limit


class UploadStateError(Exception):
    """The media file is not in a state that allows this step (an API 409)."""


class MediaStorageUnavailable(Exception):
    """The media storage failed to answer (an API 503: the client may retry the same request)."""


class UploadPartsInvalid(Exception):
    """The parts named to complete a multipart upload are not the ones uploaded (an API 400)."""


class MediaBusy(Exception):
    """Another worker is transcoding this media file right now."""


class TransientMediaError(Exception):
    """A failure worth retrying (storage, database, a killed encoder)."""


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    DatabaseError,
    ProbeFailed,
    *storage.s3_client_errors(),
)


def transcode_time_limit(duration: float | None) -> int:
    """Seconds a transcode may take: a base plus a multiple of the source's duration."""
    return int(
        settings.TRANSCODE_TIME_LIMIT_BASE + settings.TRANSCODE_TIME_LIMIT_PER_SECOND * (duration or 0)
    )


def retry_countdown(retries_so_far: int) -> int:
    """Exponential backoff from 5 s: 5, 10, 20."""
    return int(RETRY_BASE_SECONDS * 2**retries_so_far)


def notify_owner_video_ready(video: Video) -> None:
    """Tells the owner their video can be watched: an inbox entry and an email (accounts)."""
    from accounts import notifications

    logger.info("video ready: %s (owner %s)", video.pk, video.owner_id, extra={"video_id": video.pk})
    notifications.notify_video_ready(video=video)


def notify_owner_transcoding_failed(video_id: str, message: str) -> None:
    """Tells the owner their upload could not be processed, and why (inbox and email)."""
    from accounts import notifications

    video = Video.objects.filter(pk=video_id).first()
    if video is not None:
        notifications.notify_transcoding_failed(video=video, error=message)


def _after_commit(callback: Callable[[], None]) -> None:
    """Runs ``callback`` once the transaction commits. What it does can fail (the broker, the
    storage): that is logged, never raised into a request whose write has already committed.
    Each such step has a catch-up: a transcode never enqueued is found by the media sweep, files
    left in storage by the orphan sweep, a notification is a courtesy."""
    transaction.on_commit(callback, robust=True)


def _enqueue_transcode(media_file: MediaFile) -> None:
    # Like videoplatform.jobs.enqueue.enqueue_on_commit, with the task's own time limits.
    _after_commit(partial(_publish_transcode, media_file.pk, transcode_time_limit(media_file.duration)))


def _publish_transcode(media_file_id: str, limit: int) -> None:
    from videoplatform.jobs.enqueue import task_named

    transcode_media_file = task_named("streaming.tasks.transcode_media_file")  # by name: the tasks import us

    # Soft limit: the worker raises in the task, which fails the job cleanly; the ffmpeg
    # watchdog uses the same figure minus the time left for fetching and publishing.
    try:
        transcode_media_file.apply_async((media_file_id,), soft_time_limit=limit + 60, time_limit=limit + 120)
    except Exception:
        logger.exception("could not enqueue the transcode of %s; the media sweep will", media_file_id)


def _apply_probe(media_file: MediaFile, result: ProbeResult) -> None:
    media_file.duration = result.duration
    media_file.width = result.width
    media_file.height = result.height
    media_file.fps = result.fps
    media_file.video_codec = result.video_codec
    media_file.audio_codec = result.audio_codec
    media_file.bitrate = result.bitrate
    media_file.container = result.container


def _local_probe_target(name: str) -> str:
    return storage.presigned_get(name) if storage.is_s3() else storage.media_storage().path(name)


def _mark_failed(media_file_id: str, message: str, *, run_token: str | None = None) -> None:
    with transaction.atomic():
        queryset = MediaFile.objects.select_for_update().filter(pk=media_file_id)
        if run_token is not None:
            queryset = queryset.filter(run_token=run_token)
        media_file = queryset.first()
        if media_file is None:
            return
        # A run that was under way failed: the owner hears of it (a refused upload is a 4xx instead).
        was_under_way = media_file.status in (MediaFile.Status.UPLOADED, MediaFile.Status.PROCESSING)
        media_file.status = MediaFile.Status.FAILED
        media_file.error = message[:2000]
        media_file.heartbeat_at = None
        media_file.save(update_fields=["status", "error", "heartbeat_at", "updated_at"])
        selectors.media_cache_refresh(video_ids=[media_file.video_id])
        video_services.video_media_state_set(video_id=media_file.video_id, status=Video.Status.FAILED)
        events.publish_on_commit("video.failed", media_file.video)
        if was_under_way:
            video_id = media_file.video_id
            _after_commit(partial(notify_owner_transcoding_failed, video_id, message))
    logger.warning("transcode failed for %s: %s", media_file_id, message)


def media_file_mark_failed(*, media_file_id: str, message: str) -> None:
    _mark_failed(media_file_id, message)


# --- Upload intake -----------------------------------------------------------------------


def _check_size(size: int | None) -> None:
    if size is not None and size > settings.MEDIA_UPLOAD_MAX_BYTES:
        raise UploadTooLarge(settings.MEDIA_UPLOAD_MAX_BYTES)


def _media_file_for_upload(video: Video) -> MediaFile:
    """The video's media file, locked, ready to take a (new) upload; 409 while one is in use."""
    media_file = MediaFile.objects.select_for_update().filter(video_id=video.pk).first()
    if media_file is None:
        return MediaFile(video=video)
    if media_file.status not in (MediaFile.Status.AWAITING_UPLOAD, MediaFile.Status.FAILED):
        raise UploadStateError(f"This video already has media ({media_file.status}).")
    return media_file


def media_probe_local(*, path: str) -> ProbeResult:
    """Probes an uploaded file before anything is stored. Raises ``InvalidMedia`` (or
    ``MediaToolsUnavailable`` when ffprobe is not installed)."""
    media_tools.require(media_tools.UPLOAD_TOOLS)
    return probe(path)


def media_file_attach_upload(
    *, video: Video, upload: UploadedFile, filename: str, probe_result: ProbeResult
) -> MediaFile:
    """Stores an upload that arrived through the API (already probed) and enqueues its transcode.

    Runs inside the caller's transaction; the stored file is removed again if that rolls back.
    The file goes to a key of its own (a new attempt), which nothing else ever writes.
    """
    _check_size(upload.size)
    media_file = _media_file_for_upload(video)
    _check_declared_size(media_file, upload.size)
    limits.upload_accept_check(owner=video.owner, media_file=media_file, result=probe_result)
    old_source, old_staging, old_upload_id = (
        media_file.source_path,
        media_file.upload_key,
        media_file.upload_id,
    )
    name = storage.source_name(video.pk, filename, secrets.token_hex(6))
    storage.save_file(name, upload, content_type=upload.content_type)
    try:
        media_file.source_path = name
        media_file.source_size = upload.size
        media_file.source_etag = ""
        media_file.upload_id = ""
        media_file.upload_key = ""
        media_file.status = MediaFile.Status.UPLOADED
        media_file.progress = 0
        media_file.error = ""
        _apply_probe(media_file, probe_result)
        media_file.save()
        selectors.media_cache_refresh(video_ids=[video.pk])
        video_services.video_media_state_set(
            video_id=video.pk, status=Video.Status.PROCESSING, duration=probe_result.duration
        )
    except BaseException:
        storage.delete(name)
        raise
    if old_source and old_source != name:
        _after_commit(partial(storage.delete, old_source))
    _forget_staging_on_commit(old_staging, old_upload_id)
    _enqueue_transcode(media_file)
    return media_file


def _check_declared_size(media_file: MediaFile, size: int | None) -> None:
    """The size the client declared when it asked for the upload target is a promise it keeps."""
    if media_file.declared_size is not None and size is not None and size > media_file.declared_size:
        raise UploadTooLarge(media_file.declared_size)


def _forget_staging(staging: str, upload_id: str) -> None:
    if upload_id and staging and storage.is_s3():
        storage.multipart_abort(staging, upload_id=upload_id)
    if staging:
        storage.delete(staging)


def _forget_staging_on_commit(staging: str, upload_id: str) -> None:
    """An earlier attempt's staging object (and open multipart upload) go once this commits."""
    if staging or upload_id:
        _after_commit(partial(_forget_staging, staging, upload_id))


@dataclass(frozen=True)
class UploadTarget:
    """Where and how the client uploads its file."""

    method: str
    url: str | None
    headers: dict[str, str]
    expires_at: datetime | None
    max_bytes: int
    complete_url: str
    multipart: dict[str, Any] | None = None
    fields: dict[str, str] | None = None  # a POST upload's form fields, sent before the file

    def as_dict(self) -> dict[str, Any]:
        return {
            "fields": self.fields,
            "method": self.method,
            "url": self.url,
            "headers": self.headers,
            "expires_at": self.expires_at,
            "max_bytes": self.max_bytes,
            "complete_url": self.complete_url,
            "multipart": self.multipart,
        }


@transaction.atomic
def media_upload_target_create(
    *, video: Video, filename: str = "", content_type: str = "", file_size: int | None = None
) -> UploadTarget:
    """Prepares an upload the client sends elsewhere: a presigned S3 upload (multipart when the
    declared size is large) or, on the filesystem backend, this API's upload URL.

    On S3 the client writes a staging key of this attempt (``uploads/…``), never the source key
    the worker reads; the target itself refuses more bytes than declared (the POST policy's
    ``content-length-range``, each part's signed ``Content-Length``).
    """
    _check_size(file_size)
    media_file = _media_file_for_upload(video)
    limits.upload_start_check(owner=video.owner, media_file=media_file)
    _forget_staging_on_commit(media_file.upload_key, media_file.upload_id)
    content_type = content_type or "application/octet-stream"
    attempt = secrets.token_hex(6)
    media_file.source_size = None
    media_file.source_etag = ""
    media_file.declared_size = file_size
    media_file.status = MediaFile.Status.AWAITING_UPLOAD
    media_file.error = ""
    media_file.upload_id = ""
    limit = file_size if file_size is not None else settings.MEDIA_UPLOAD_MAX_BYTES
    complete_url = f"/api/videos/{video.pk}/upload/complete"
    expires_at = timezone.now() + timedelta(seconds=settings.MEDIA_UPLOAD_URL_TTL)
    ttl = settings.MEDIA_UPLOAD_URL_TTL
    selectors.media_cache_refresh(video_ids=[video.pk])  # runs after the save below commits
    if not storage.is_s3():
        media_file.source_path = storage.source_name(video.pk, filename or "source", attempt)
        media_file.upload_key = ""
        media_file.save()
        return UploadTarget(
            method="PUT",
            url=f"/api/videos/{video.pk}/upload",
            headers={"Content-Type": content_type},
            expires_at=None,
            max_bytes=limit,
            complete_url=complete_url,
        )
    staging = storage.staging_name(video.pk, filename or "source", attempt)
    media_file.upload_key = staging
    media_file.source_path = ""
    if file_size is not None and file_size > settings.MEDIA_UPLOAD_MULTIPART_THRESHOLD:
        # S3 allows 10,000 parts: grow the part size for very large files.
        part_size = max(settings.MEDIA_UPLOAD_PART_SIZE, math.ceil(file_size / 10_000))
        count = math.ceil(file_size / part_size)
        upload_id = storage.multipart_create(staging, content_type=content_type)
        media_file.upload_id = upload_id
        media_file.save()
        parts = [
            {
                "part_number": number,
                "size": min(part_size, file_size - (number - 1) * part_size),
                "url": storage.multipart_part_url(
                    staging,
                    upload_id=upload_id,
                    part_number=number,
                    size=min(part_size, file_size - (number - 1) * part_size),
                    expires=ttl,
                ),
            }
            for number in range(1, count + 1)
        ]
        return UploadTarget(
            method="PUT",
            url=None,
            headers={},
            expires_at=expires_at,
            max_bytes=limit,
            complete_url=complete_url,
            multipart={"upload_id": upload_id, "part_size": part_size, "parts": parts},
        )
    media_file.save()
    post = storage.presigned_post(staging, expires=ttl, content_type=content_type, max_bytes=limit)
    return UploadTarget(
        method="POST",
        url=post["url"],
        headers={},
        expires_at=expires_at,
        max_bytes=limit,
        complete_url=complete_url,
        fields=post["fields"],
    )


def _accept_stored_source(media_file: MediaFile, *, source: str, size: int, etag: str) -> MediaFile:
    """Probes a source already in storage (at a key no client can write): failed (and
    InvalidMedia raised) or enqueued."""
    media_tools.require(media_tools.UPLOAD_TOOLS)
    try:
        result = probe(_local_probe_target(source))
    except InvalidMedia as exc:
        media_file.source_path = source
        media_file.source_size = size
        media_file.save(update_fields=["source_path", "source_size", "updated_at"])
        _mark_failed(media_file.pk, str(exc))
        raise
    with transaction.atomic():
        locked = MediaFile.objects.select_for_update().get(pk=media_file.pk)
        if locked.status != MediaFile.Status.AWAITING_UPLOAD:
            # Completed concurrently: the first completion enqueued the work; this copy goes.
            if source != locked.source_path:
                _after_commit(partial(storage.delete, source))
            return locked
        try:
            limits.upload_accept_check(owner=locked.video.owner, media_file=locked, result=result)
        except (limits.PlanLimitExceeded, limits.QuotaExceeded):
            if locked.upload_key and locked.upload_key != source:
                storage.delete(source)  # this completion's copy; the upload itself stays
            raise
        if locked.upload_key and locked.upload_key != source:
            _forget_staging_on_commit(locked.upload_key, "")
        locked.status = MediaFile.Status.UPLOADED
        locked.source_path = source
        locked.source_size = size
        locked.source_etag = etag
        locked.upload_id = ""
        locked.upload_key = ""
        locked.progress = 0
        locked.error = ""
        _apply_probe(locked, result)
        locked.save()
        selectors.media_cache_refresh(video_ids=[locked.video_id])
        video_services.video_media_state_set(
            video_id=locked.video_id, status=Video.Status.PROCESSING, duration=result.duration
        )
        _enqueue_transcode(locked)
    return locked


def media_file_receive_upload(*, video: Video, upload: UploadedFile) -> MediaFile:
    """Takes the body sent to the API upload URL (filesystem backend, or any backend)."""
    _check_size(upload.size)
    media_file = MediaFile.objects.filter(video_id=video.pk).first()
    if media_file is None or media_file.status not in (
        MediaFile.Status.AWAITING_UPLOAD,
        MediaFile.Status.FAILED,
    ):
        raise UploadStateError(
            "This video has no pending upload."
            if media_file is None
            else f"This video already has media ({media_file.status})."
        )
    _check_declared_size(media_file, upload.size)
    path = upload.temporary_file_path() if hasattr(upload, "temporary_file_path") else None
    if path is None:
        raise UploadStateError("The upload was not received as a file.")
    media_tools.require(media_tools.UPLOAD_TOOLS)
    try:
        result = probe(path)
    except InvalidMedia as exc:
        media_file.source_size = upload.size
        media_file.save(update_fields=["source_size", "updated_at"])
        _mark_failed(media_file.pk, str(exc))
        raise
    with transaction.atomic():
        return media_file_attach_upload(
            video=video,
            upload=upload,
            filename=os.path.basename(media_file.source_path or media_file.upload_key) or "source",
            probe_result=result,
        )


def media_file_complete_upload(*, video: Video, parts: list[dict[str, Any]] | None = None) -> MediaFile:
    """The client finished uploading where its upload target said: check, probe, enqueue.

    Idempotent: completing an upload that is already accepted answers its current state.
    """
    media_file = MediaFile.objects.filter(video_id=video.pk).first()
    if media_file is None:
        raise UploadStateError("This video has no pending upload; create one first.")
    if media_file.status in (
        MediaFile.Status.UPLOADED,
        MediaFile.Status.PROCESSING,
        MediaFile.Status.READY,
    ):
        return media_file
    if media_file.status == MediaFile.Status.FAILED:
        raise UploadStateError(f"The upload failed: {media_file.error}")
    if media_file.upload_id:
        if not parts:
            raise UploadStateError(
                "This multipart upload needs its parts (part_number and etag) to complete."
            )
        _complete_multipart(media_file, parts)
    # What the client wrote: the staging key of this attempt (S3), else the source key itself.
    written = media_file.upload_key or media_file.source_path
    try:
        size, etag = storage.stat(written)
    except FileNotFoundError as exc:
        raise UploadStateError("Nothing has been uploaded yet.") from exc
    except storage.s3_client_errors() as exc:
        raise MediaStorageUnavailable(f"The media storage failed: {exc}") from exc
    limit = min(settings.MEDIA_UPLOAD_MAX_BYTES, media_file.declared_size or settings.MEDIA_UPLOAD_MAX_BYTES)
    if size > limit:
        storage.delete(written)
        raise UploadTooLarge(limit)
    if not media_file.upload_key:
        return _accept_stored_source(media_file, source=written, size=size, etag=etag)
    # The staging key stays writable while its presigned URL lives: what is probed and later
    # transcoded is a copy of exactly the version measured here, at a key of this completion.
    source = storage.source_name(video.pk, os.path.basename(written), secrets.token_hex(6))
    try:
        etag = storage.copy_pinned(written, source, etag=etag)
    except storage.s3_client_errors() as exc:
        raise MediaStorageUnavailable(f"The media storage failed: {exc}") from exc
    return _accept_stored_source(media_file, source=source, size=size, etag=etag)


def _complete_multipart(media_file: MediaFile, parts: list[dict[str, Any]]) -> None:
    numbers = [part["part_number"] for part in parts]
    if len(set(numbers)) != len(numbers):
        raise UploadPartsInvalid("Each part number may be named once.")
    try:
        storage.multipart_complete(
            media_file.upload_key or media_file.source_path,
            upload_id=media_file.upload_id,
            parts=sorted(parts, key=lambda part: part["part_number"]),
        )
    except storage.s3_client_errors() as exc:
        raise MediaStorageUnavailable(f"The media storage failed: {exc}") from exc
    except storage.MultipartRejected as exc:
        if exc.code == "NoSuchUpload":
            raise UploadStateError("This multipart upload is no longer open; create a new upload.") from exc
        raise UploadPartsInvalid(
            f"The storage refused these parts ({exc.code}): send each uploaded part's number and "
            "the ETag its upload answered."
        ) from exc


def media_file_retranscode(*, media_file: MediaFile) -> bool:
    """Runs the ladder again (staff action). False when a worker is on it right now."""
    with transaction.atomic():
        locked = MediaFile.objects.select_for_update().get(pk=media_file.pk)
        if locked.status == MediaFile.Status.AWAITING_UPLOAD:
            return False
        if locked.status == MediaFile.Status.PROCESSING and _run_alive(locked):
            return False
        locked.status = MediaFile.Status.UPLOADED
        locked.progress = 0
        locked.error = ""
        locked.heartbeat_at = None
        locked.attempts = 0  # a fresh start: the staff asked for it
        locked.save(update_fields=["status", "progress", "error", "heartbeat_at", "attempts", "updated_at"])
        selectors.media_cache_refresh(video_ids=[locked.video_id])
        video_services.video_media_state_set(video_id=locked.video_id, status=Video.Status.PROCESSING)
        _enqueue_transcode(locked)
    return True


# --- The transcode run --------------------------------------------------------------------


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _holder_is_dead(holder: str) -> bool:
    """True when the run's process was on this host and no longer exists (a crashed worker
    child, redelivered here at once); elsewhere only a stale heartbeat tells."""
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _heartbeat_fresh(media_file: MediaFile) -> bool:
    return bool(media_file.heartbeat_at and timezone.now() - media_file.heartbeat_at < HEARTBEAT_STALE)


def _run_alive(media_file: MediaFile) -> bool:
    return _heartbeat_fresh(media_file) and not _holder_is_dead(media_file.run_holder)


def _claim(media_file_id: str) -> MediaFile | None:
    """Takes the media file for this run, or None when there is nothing to do."""
    with transaction.atomic():
        media_file = (
            MediaFile.objects.select_for_update().select_related("video").filter(pk=media_file_id).first()
        )
        if media_file is None:
            logger.info("transcode skipped: media file %s is gone", media_file_id)
            return None
        if media_file.status in (
            MediaFile.Status.READY,
            MediaFile.Status.FAILED,
            MediaFile.Status.AWAITING_UPLOAD,
        ):
            logger.info("transcode skipped: media file %s is %s", media_file_id, media_file.status)
            return None
        if media_file.status == MediaFile.Status.PROCESSING and _run_alive(media_file):
            raise MediaBusy(media_file_id)
        if media_file.attempts >= MAX_RUNS:
            media_file.status = MediaFile.Status.FAILED
            media_file.error = f"Gave up after {media_file.attempts} runs that did not finish."
            media_file.heartbeat_at = None
            media_file.save(update_fields=["status", "error", "heartbeat_at", "updated_at"])
            selectors.media_cache_refresh(video_ids=[media_file.video_id])
            video_services.video_media_state_set(video_id=media_file.video_id, status=Video.Status.FAILED)
            events.publish_on_commit("video.failed", media_file.video)
            return None
        now = timezone.now()
        media_file.status = MediaFile.Status.PROCESSING
        media_file.run_token = secrets.token_hex(6)
        media_file.run_holder = _holder()
        media_file.attempts += 1
        media_file.progress = 0
        media_file.error = ""
        media_file.heartbeat_at = now
        media_file.processing_started_at = now
        media_file.save()
        selectors.media_cache_refresh(video_ids=[media_file.video_id])
        video_services.video_media_state_set(video_id=media_file.video_id, status=Video.Status.PROCESSING)
    return media_file


class _ProgressReporter:
    """Stores progress at most every TRANSCODE_PROGRESS_INTERVAL seconds (and a heartbeat at
    least every HEARTBEAT_EVERY seconds), only while this run still holds the media file."""

    def __init__(self, media_file: MediaFile) -> None:
        self.media_file_id = media_file.pk
        self.run_token = media_file.run_token
        self.stored = 0
        self.last_write = time.monotonic()
        self.lost = False

    def __call__(self, fraction: float) -> None:
        # The last 5 % are publishing the outputs.
        percent = min(95, int(fraction * 95))
        now = time.monotonic()
        elapsed = now - self.last_write
        if (percent > self.stored and elapsed >= settings.TRANSCODE_PROGRESS_INTERVAL) or (
            elapsed >= HEARTBEAT_EVERY
        ):
            self.write(percent)

    def write(self, percent: int) -> None:
        # No media cache refresh: this run's file is processing, and the cache keeps only a
        # ready ladder (the stream endpoint reads a processing file's progress from the database).
        updated = MediaFile.objects.filter(pk=self.media_file_id, run_token=self.run_token).update(
            progress=percent, heartbeat_at=timezone.now(), updated_at=timezone.now()
        )
        self.lost = self.lost or updated == 0
        self.stored = percent
        self.last_write = time.monotonic()


def _work_prefix(media_file: MediaFile) -> str:
    return f"transcode-{media_file.pk}-"


def _remove_orphan_work_dirs(media_file: MediaFile) -> None:
    """Temporary folders that crashed runs of this media file left on this host."""
    work_root = storage.local_work_dir() or tempfile.gettempdir()
    for name in os.listdir(work_root):
        if name.startswith(_work_prefix(media_file)) and not name.startswith(
            f"{_work_prefix(media_file)}{media_file.run_token}-"
        ):
            shutil.rmtree(os.path.join(work_root, name), ignore_errors=True)


def _remove_orphans(media_file: MediaFile) -> None:
    """Deletes what runs that never finished (a crash) left: their outputs in storage, keeping
    the ready ones, and their temporary folders on this host."""
    _remove_orphan_work_dirs(media_file)
    keep = {media_file.output_prefix.rsplit("/", 1)[-1]} if media_file.output_prefix else set()
    keep.add(media_file.run_token)
    root = storage.hls_root(media_file.video_id)
    for run in storage.list_dirs(root):
        if run not in keep:
            storage.delete_prefix(f"{root}/{run}")


def _write_masters(out_dir: str, rungs: list[ladder.Rung]) -> None:
    with open(os.path.join(out_dir, ladder.MASTER_PLAYLIST), "w") as handle:
        handle.write(ladder.master_playlist(rungs))
    for rung in rungs:
        allowed = [r for r in rungs if r.quality <= rung.quality]
        with open(os.path.join(out_dir, ladder.master_name(rung.quality)), "w") as handle:
            handle.write(ladder.master_playlist(allowed))


def _finish(media_file: MediaFile, rungs: list[ladder.Rung], prefix: str, out_dir: str) -> bool:
    thumbs_dir = os.path.join(out_dir, ladder.THUMBNAIL_DIR)
    thumbnails = sorted(os.listdir(thumbs_dir)) if os.path.isdir(thumbs_dir) else []
    has_poster = os.path.exists(os.path.join(out_dir, ladder.POSTER))
    storage.publish_dir(out_dir, prefix)
    with transaction.atomic():
        locked = MediaFile.objects.select_for_update().select_related("video").get(pk=media_file.pk)
        if locked.run_token != media_file.run_token:
            _after_commit(partial(storage.delete_prefix, prefix))
            return False
        old_prefix = locked.output_prefix
        locked.renditions.all().delete()
        Rendition.objects.bulk_create(
            Rendition(
                media_file=locked,
                quality=rung.quality,
                width=rung.width,
                height=rung.height,
                bandwidth=rung.bandwidth,
                codecs=rung.codecs,
                playlist_path=f"{prefix}/{rung.playlist}",
            )
            for rung in rungs
        )
        locked.status = MediaFile.Status.READY
        locked.progress = 100
        locked.error = ""
        locked.output_prefix = prefix
        locked.poster_path = f"{prefix}/{ladder.POSTER}" if has_poster else ""
        locked.thumbnail_paths = [f"{prefix}/{ladder.THUMBNAIL_DIR}/{name}" for name in thumbnails]
        locked.thumbnail_interval = settings.TRANSCODE_THUMBNAIL_INTERVAL
        locked.heartbeat_at = None
        locked.ready_at = timezone.now()
        locked.save()
        selectors.media_cache_refresh(video_ids=[locked.video_id])
        video_services.video_media_state_set(
            video_id=locked.video_id, status=Video.Status.READY, duration=locked.duration
        )
        video = locked.video
        if old_prefix and old_prefix != prefix:
            _after_commit(partial(storage.delete_prefix, old_prefix))
        _after_commit(partial(notify_owner_video_ready, video))
        events.publish_on_commit("video.ready", video)
    return True


def media_file_transcode(*, media_file_id: str) -> MediaFile | None:
    """One transcode run: probe, the ladder in one ffmpeg invocation, publish, mark ready.

    Permanent failures (not a video, a corrupt file, over the time limit) mark the media file
    failed and return. Transient ones raise ``TransientMediaError`` for the task to retry.
    ``MediaBusy`` means another worker holds the media file. A re-run after a crash yields one
    set of renditions: rows are replaced in one transaction, and outputs of unfinished runs
    are deleted.
    """
    media_file = _claim(media_file_id)
    if media_file is None:
        return None
    prefix = storage.output_prefix(media_file.video_id, media_file.run_token)
    try:
        _remove_orphans(media_file)
        with tempfile.TemporaryDirectory(
            prefix=f"{_work_prefix(media_file)}{media_file.run_token}-", dir=storage.local_work_dir()
        ) as work:
            out_dir = os.path.join(work, "out")
            os.makedirs(os.path.join(out_dir, ladder.THUMBNAIL_DIR))
            with _pinned_source(media_file, work) as source:
                # Exactly the demuxer the intake accepted (the allowlist for rows probed before
                # it was recorded): a source that is not that fails here, whatever it claims.
                result = probe(source, container=media_file.container)
                rungs = ladder.ladder_for(result)
                command = ladder.ffmpeg_command(
                    ffmpeg=settings.FFMPEG_BINARY,
                    source=source,
                    output_dir=out_dir,
                    probe=result,
                    rungs=rungs,
                    preset=settings.TRANSCODE_X264_PRESET,
                    threads=settings.TRANSCODE_THREADS,
                    thumbnail_interval=settings.TRANSCODE_THUMBNAIL_INTERVAL,
                )
                # The work follows what the packets span, not what the header declares.
                work_seconds = measure_duration(source, container=result.container)
                reporter = _ProgressReporter(media_file)
                run_ffmpeg(
                    command,
                    duration=work_seconds or result.duration,
                    on_progress=reporter,
                    stderr_path=os.path.join(work, "ffmpeg.log"),
                    timeout=transcode_time_limit(work_seconds),
                )
            if reporter.lost:
                logger.info("transcode run of %s was superseded; dropping it", media_file_id)
                return None
            missing = [r.name for r in rungs if not os.path.exists(os.path.join(out_dir, r.playlist))]
            if missing:
                raise TranscodeError(f"ffmpeg wrote no playlist for {', '.join(missing)}.", permanent=False)
            _apply_probe(media_file, result)
            MediaFile.objects.filter(pk=media_file.pk).update(
                duration=result.duration,
                width=result.width,
                height=result.height,
                fps=result.fps,
                video_codec=result.video_codec,
                audio_codec=result.audio_codec,
                bitrate=result.bitrate,
                container=result.container,
            )
            selectors.media_cache_refresh(video_ids=[media_file.video_id])
            _write_masters(out_dir, rungs)
            reporter.write(97)
            if not _finish(media_file, rungs, prefix, out_dir):
                return None
        # Once more at the end: an encoder of a crashed run may still have been exiting at the start.
        _remove_orphan_work_dirs(media_file)
    except InvalidMedia as exc:
        _mark_failed(media_file.pk, str(exc), run_token=media_file.run_token)
        _forget_outputs(prefix)
        return None
    except TranscodeError as exc:
        _forget_outputs(prefix)
        if exc.permanent:
            _mark_failed(media_file.pk, str(exc), run_token=media_file.run_token)
            return None
        _release(media_file, str(exc))
        raise TransientMediaError(str(exc)) from exc
    except TRANSIENT_ERRORS as exc:
        _forget_outputs(prefix)
        _release(media_file, f"{type(exc).__name__}: {exc}")
        raise TransientMediaError(f"{type(exc).__name__}: {exc}") from exc
    except BaseException:
        # A soft time limit or a bug: never leave half a ladder behind.
        _forget_outputs(prefix)
        raise
    return MediaFile.objects.get(pk=media_file.pk)


@contextmanager
def _pinned_source(media_file: MediaFile, work: str) -> Iterator[str]:
    """The source as it was checked at intake: the version with its ETag (S3), of its size."""
    try:
        with storage.local_copy(media_file.source_path, work, etag=media_file.source_etag) as source:
            if media_file.source_size is not None and os.path.getsize(source) != media_file.source_size:
                raise InvalidMedia("The source changed after it was checked; upload it again.")
            yield source
    except storage.s3_client_errors() as exc:
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        if code in ("412", "PreconditionFailed"):
            raise InvalidMedia("The source changed after it was checked; upload it again.") from exc
        raise


def _forget_outputs(prefix: str) -> None:
    try:
        storage.delete_prefix(prefix)
    except Exception:
        logger.warning("could not remove outputs under %s", prefix, exc_info=True)


def _release(media_file: MediaFile, message: str) -> None:
    """Hands the media file back for a retry (the next run claims it at once)."""
    try:
        MediaFile.objects.filter(pk=media_file.pk, run_token=media_file.run_token).update(
            status=MediaFile.Status.UPLOADED,
            error=f"Retrying after: {message}"[:2000],
            heartbeat_at=None,
            updated_at=timezone.now(),
        )
        # A run that fails after its finish (cleaning up) takes a ready file back to uploaded.
        selectors.media_cache_refresh(video_ids=[media_file.video_id])
    except DatabaseError:
        connection.close()  # the next attempt reconnects


# --- Plays and views --------------------------------------------------------------------------


def viewer_key(*, user: Any, ip: str, user_agent: str) -> str:
    """Who counts as one viewer: the user, or an anonymous client (address and agent, hashed)."""
    if user is not None and user.is_authenticated:
        return f"u:{user.pk}"
    digest = hashlib.sha256(f"{ip}|{user_agent}".encode()).hexdigest()[:20]
    return f"a:{digest}"


def video_play_start(
    *, video: Video, user: Any, lease: str, limit: int, viewer: str, rendition_quality: int | None
) -> bool:
    """A playback starts: takes the signed-in viewer's concurrent-stream lease (raises
    ``sessions.ConcurrentStreamLimit`` at their plan's limit, recording nothing), then counts
    the play (``video_play_record``). True when the play was counted.

    When the leases and the play counts live on one Redis server (the default: both are
    ``REDIS_URL``), that is one Lua call: one round trip, and no SQL (the watch-history row
    waits in Redis for the flush, like the count). Otherwise the lease is its own call first.
    """
    signed_in = user is not None and user.is_authenticated
    one_server = settings.STREAM_LEASE_REDIS_URL == settings.VIEW_COUNTER_REDIS_URL
    if not signed_in or not one_server or plays.counter_client() is None:
        sessions.stream_lease_acquire(user=user, lease=lease, limit=limit)
        return video_play_record(video=video, user=user, viewer=viewer, rendition_quality=rendition_quality)
    held = (sessions.lease_key(user.pk), lease, settings.STREAM_LEASE_TTL * 1000, limit)
    return video_play_record(
        video=video, user=user, viewer=viewer, rendition_quality=rendition_quality, lease=held
    )


def video_play_record(
    *,
    video: Video,
    user: Any,
    viewer: str,
    rendition_quality: int | None,
    lease: tuple[str, str, int, int] | None = None,
) -> bool:
    """A play: counted once per viewer per video within VIEW_DEDUP_WINDOW, and written to a
    signed-in viewer's watch history (queued in Redis with the count, written by the flush; at
    once on the embedded default). ``lease`` (set key, lease id, ms, limit) is taken first in the
    same call. True when it was counted. An unreachable Redis counts nothing and limits nobody."""
    signed_in = user is not None and user.is_authenticated
    client = plays.counter_client()
    window = settings.VIEW_DEDUP_WINDOW
    if client is None:
        # The embedded default (one process, no Redis): dedup in the local cache, count directly.
        from django.core.cache import cache

        counted = cache.add(f"{plays.SEEN_PREFIX}{video.pk}:{viewer}", 1, timeout=window)
        if counted:
            Video.objects.filter(pk=video.pk).update(view_count=F("view_count") + 1)
        if counted and signed_in:
            try:
                WatchEvent.objects.create(
                    user_id=user.pk, video_id=video.pk, rendition_height=rendition_quality
                )
            except DatabaseError:
                logger.warning("watch history write failed for %s", user.pk, exc_info=True)
        return bool(counted)
    history = None
    if signed_in:
        history = plays.history_entry(
            user_id=user.pk, video_id=video.pk, rendition_height=rendition_quality, at=timezone.now()
        )
    try:
        outcome = plays.start(
            client, video_id=video.pk, viewer_key=viewer, window=window, history=history, lease=lease
        )
    except Exception:
        logger.warning("play counter unavailable, not counting (or limiting) this play", exc_info=True)
        return False
    if outcome == plays.REFUSED and lease is not None:
        raise sessions.ConcurrentStreamLimit(lease[3])
    return outcome == plays.COUNTED


def video_views_flush(*, batch_size: int | None = None) -> int:
    """Adds the pending play counts to ``Video.view_count`` (one UPDATE per batch of videos) and
    writes the pending watch history (``watch_history_flush``). Answers the plays counted."""
    client = plays.counter_client()
    if client is None:
        return 0
    batch_size = batch_size or settings.VIEW_FLUSH_BATCH
    flushed = 0
    for key in plays.take_pending(client):
        counts = plays.read_batch(client, key)
        items = sorted(counts.items())
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            with transaction.atomic():
                Video.objects.filter(pk__in=[video_id for video_id, _ in chunk]).update(
                    view_count=F("view_count")
                    + Case(
                        *(When(pk=video_id, then=Value(count)) for video_id, count in chunk),
                        default=Value(0),
                        output_field=IntegerField(),
                    )
                )
            flushed += sum(count for _, count in chunk)
        client.delete(key)
    watch_history_flush(batch_size=batch_size)
    return flushed


def watch_history_flush(*, batch_size: int | None = None) -> int:
    """Writes the plays waiting in Redis to the viewers' watch history: one INSERT per batch and
    shard. A batch leaves its list only after its rows are committed, so a flush that dies
    midway leaves the rest for the next one (at worst the batch in flight is written twice).
    Answers the rows written."""
    client = plays.counter_client()
    if client is None:
        return 0
    batch_size = batch_size or settings.VIEW_FLUSH_BATCH
    written = 0
    for key in plays.take_history(client):
        while raw := client.lrange(key, 0, batch_size - 1):
            events = [
                WatchEvent(user_id=user_id, video_id=video_id, rendition_height=height, started_at=at)
                for user_id, video_id, height, at in filter(None, map(plays.parse_history_entry, raw))
            ]
            if events:
                WatchEvent.objects.bulk_create(events)
            client.ltrim(key, len(raw), -1)
            written += len(events)
    return written
