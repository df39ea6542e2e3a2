"""Daily clean-up: abandoned uploads and stale temporary files.

- A video still ``awaiting_upload`` UPLOAD_ABANDONED_AFTER seconds after it was created (its
  upload URL expired long before) is deleted, with any partial upload: the stored part of the
  file and an unfinished S3 multipart upload (which S3 bills until it is aborted).
- Transcode work folders (``transcode-*``) older than TEMP_FILES_MAX_AGE are a crashed worker's
  leftovers (a run removes its own whatever happens) and are removed; so are result files of
  the embedded default's filesystem result backend older than CELERY_RESULT_EXPIRES.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import services
from .models import Video

logger = logging.getLogger(__name__)

WORK_DIR_PREFIX = "transcode-"


def _forget_upload(source_path: str, upload_id: str) -> None:
    from streaming import storage

    try:
        if upload_id and storage.is_s3():
            backend = storage.media_storage()
            backend.connection.meta.client.abort_multipart_upload(  # type: ignore[attr-defined]
                Bucket=backend.bucket_name,  # type: ignore[attr-defined]
                Key=storage.object_key(source_path),
                UploadId=upload_id,
            )
        if source_path:
            storage.delete(source_path)
    except Exception:
        logger.warning("could not remove the abandoned upload %s", source_path, exc_info=True)


def uploads_abandoned_cleanup(*, now: datetime | None = None, batch_size: int = 100) -> int:
    """Deletes videos whose file never arrived, and their partial uploads; how many."""
    from streaming.models import MediaFile

    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.UPLOAD_ABANDONED_AFTER)
    deleted = 0
    last = ""
    while True:
        ids = list(
            Video.objects.filter(status=Video.Status.AWAITING_UPLOAD, created_at__lt=cutoff, pk__gt=last)
            .order_by("pk")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            return deleted
        last = ids[-1]
        for video_id in ids:
            with transaction.atomic():
                video = (
                    Video.objects.select_for_update()
                    .filter(pk=video_id, status=Video.Status.AWAITING_UPLOAD)
                    .first()
                )
                media_file = MediaFile.objects.select_for_update().filter(video_id=video_id).first()
                if video is None or (media_file and media_file.status != MediaFile.Status.AWAITING_UPLOAD):
                    continue  # the file arrived meanwhile
                source = media_file.source_path if media_file else ""
                upload_id = media_file.upload_id if media_file else ""
                services.video_delete(video=video)
                transaction.on_commit(partial(_forget_upload, source, upload_id))
            deleted += 1


def _remove_old(folder: Path, *, prefix: str, max_age: float, directories: bool) -> int:
    if not folder.is_dir():
        return 0
    cutoff = time.time() - max_age
    removed = 0
    for entry in os.scandir(folder):
        if not entry.name.startswith(prefix) or entry.is_dir(follow_symlinks=False) != directories:
            continue
        try:
            if entry.stat(follow_symlinks=False).st_mtime >= cutoff:
                continue
            if directories:
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed += 1
        except OSError:
            logger.warning("could not remove %s", entry.path, exc_info=True)
    return removed


def temp_files_cleanup() -> int:
    """Removes stale transcode work folders and expired filesystem task results; how many."""
    from streaming import storage

    folders = {Path(tempfile.gettempdir())}
    work = storage.local_work_dir()
    if work:
        folders.add(Path(work))
    removed = sum(
        _remove_old(folder, prefix=WORK_DIR_PREFIX, max_age=settings.TEMP_FILES_MAX_AGE, directories=True)
        for folder in folders
    )
    results = str(settings.CELERY_RESULT_BACKEND or "")
    if results.startswith("file://"):
        removed += _remove_old(
            Path(results.removeprefix("file://")),
            prefix="",
            max_age=settings.CELERY_RESULT_EXPIRES,
            directories=False,
        )
    return removed
