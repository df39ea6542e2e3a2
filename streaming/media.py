"""The lifetime of stored media: removed when its video goes, and swept when something was missed.

A media file deleted by any path (the API, the admin, an account deletion cascading to its
videos) removes, once the deletion commits, everything stored for its video: the sources, the
ladder of every run, the staging key and an open multipart upload. A job does the work (S3 may
hold thousands of segments); should it be lost, the periodic sweep finds the folder of a video
that no longer exists and removes it. The sweep also enqueues again a transcode whose message
was lost (a media file ``uploaded`` that no run claimed).
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete
from django.utils import timezone

from videoplatform.jobs.enqueue import enqueue_on_commit

from . import storage
from .models import MediaFile

logger = logging.getLogger(__name__)

PRIMARY = "default"


def media_stored_delete(*, video_id: str, upload_key: str = "", upload_id: str = "") -> None:
    """Removes everything stored for ``video_id`` (idempotent)."""
    if upload_id and upload_key and storage.is_s3():
        storage.multipart_abort(upload_key, upload_id=upload_id)
    storage.delete_prefix(f"{storage.STAGING_ROOT}/{video_id}")
    storage.delete_prefix(storage.video_root(video_id))


# Named outside "streaming.tasks.*": it goes to the default queue, not behind long transcodes.
@shared_task(name="streaming.media.delete_stored_media", max_retries=5, default_retry_delay=30)
def delete_stored_media(video_id: str, upload_key: str = "", upload_id: str = "") -> None:
    media_stored_delete(video_id=video_id, upload_key=upload_key, upload_id=upload_id)


def _media_file_deleted(sender: Any, instance: MediaFile, **kwargs: Any) -> None:
    # A signal on purpose: a cascade (a video, an account) deletes media files without calling
    # any service of this app, and must not leave the files behind.
    enqueue_on_commit(delete_stored_media, instance.video_id, instance.upload_key, instance.upload_id)


def connect() -> None:
    post_delete.connect(_media_file_deleted, sender=MediaFile, dispatch_uid="streaming-media-deleted")


def _folder_age(prefix: str) -> float:
    """Seconds since the newest file under ``prefix`` changed (large when empty)."""
    backend = storage.media_storage()
    newest = 0.0
    if storage.is_s3(backend):
        bucket = backend.bucket  # type: ignore[attr-defined]
        for obj in bucket.objects.filter(Prefix=storage.object_key(prefix) + "/"):
            newest = max(newest, obj.last_modified.timestamp())
    else:
        import os

        root = backend.path(prefix)
        for folder, _dirs, files in os.walk(root):
            newest = max(
                [
                    newest,
                    os.path.getmtime(folder),
                    *(os.path.getmtime(os.path.join(folder, f)) for f in files),
                ]
            )
    return time.time() - newest


def media_orphans_sweep(*, grace: float | None = None) -> int:
    """Removes the stored folders (``videos/<id>``, ``uploads/<id>``) of videos that no longer
    exist, once untouched for ``grace`` seconds (an upload being stored before its video row
    commits is not an orphan); how many folders."""
    from videos.models import Video

    grace = settings.MEDIA_ORPHAN_GRACE if grace is None else grace
    removed = 0
    for root in ("videos", storage.STAGING_ROOT):
        ids = storage.list_dirs(root)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            alive = set(Video.objects.using(PRIMARY).filter(pk__in=chunk).values_list("pk", flat=True))
            for video_id in chunk:
                prefix = f"{root}/{video_id}"
                if video_id in alive or _folder_age(prefix) < grace:
                    continue
                storage.delete_prefix(prefix)
                logger.info("removed orphaned media %s", prefix)
                removed += 1
    return removed


def media_stalled_requeue(*, older_than: timedelta | None = None) -> int:
    """Enqueues again the transcodes of media files left ``uploaded`` (a lost message); how many."""
    from .services import _publish_transcode, transcode_time_limit

    if older_than is None:
        older_than = timedelta(seconds=settings.MEDIA_STALLED_AFTER)
    cutoff = timezone.now() - older_than
    stalled = MediaFile.objects.filter(status=MediaFile.Status.UPLOADED, updated_at__lt=cutoff)
    count = 0
    for media_file_id, duration in stalled.values_list("pk", "duration")[:500]:
        with transaction.atomic():
            # Touched, so that the next sweep waits again for this message.
            MediaFile.objects.filter(pk=media_file_id).update(updated_at=timezone.now())
        _publish_transcode(media_file_id, transcode_time_limit(duration))
        count += 1
    return count


@shared_task(name="streaming.media.sweep")
def sweep() -> dict[str, int]:
    """Beat: orphaned media removed, stalled transcodes enqueued again."""
    return {"orphans_removed": media_orphans_sweep(), "transcodes_requeued": media_stalled_requeue()}
