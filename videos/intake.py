"""Upload intake: a video and its media file, created together.

The one place where the catalogue calls the media pipeline: ``streaming.services`` calls
``videos.services`` (a video's media state), never the other way, and this module calls both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction

from streaming import services as media_services

from .models import Video
from .services import video_create

if TYPE_CHECKING:
    from django.core.files.uploadedfile import UploadedFile

    from streaming.probe import ProbeResult
    from streaming.services import UploadTarget


def video_create_with_upload(
    *, owner: Any, upload: UploadedFile, probe_result: ProbeResult, **metadata: Any
) -> Video:
    """A video whose file came with the request (already probed): stored, and transcoding queued."""
    with transaction.atomic():
        video = video_create(owner=owner, **metadata)
        media_services.media_file_attach_upload(
            video=video, upload=upload, filename=upload.name or "source", probe_result=probe_result
        )
    video.refresh_from_db(fields=["status", "duration"])
    return video


def video_create_with_upload_target(
    *,
    owner: Any,
    file_name: str = "",
    file_size: int | None = None,
    content_type: str = "",
    **metadata: Any,
) -> tuple[Video, UploadTarget]:
    """A video created from metadata, and where its file should be uploaded."""
    with transaction.atomic():
        video = video_create(owner=owner, **metadata)
        target = media_services.media_upload_target_create(
            video=video, filename=file_name, content_type=content_type, file_size=file_size
        )
    return video, target
