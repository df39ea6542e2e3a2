"""Upload bodies streamed to a temporary file in chunks, never held whole in memory, with a size limit."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from rest_framework import status
from rest_framework.request import Request

from videoplatform.api.errors import ApiError

CHUNK = 256 * 1024
# Room for the form's other fields and the multipart framing around the file.
FORM_OVERHEAD = 1024 * 1024
FILE_FIELD = "file"


def too_large() -> ApiError:
    limit = settings.MEDIA_UPLOAD_MAX_BYTES
    return ApiError(
        status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        "payload_too_large",
        f"The file is larger than the upload limit of {limit} bytes.",
    )


class LimitedTemporaryFileHandler(FileUploadHandler):
    """Writes the ``file`` field of a multipart form to a temporary file, up to the limit."""

    chunk_size = CHUNK

    def __init__(self, request: Any, limit: int) -> None:
        super().__init__(request)
        self.limit = limit
        self.received = 0
        self.file: TemporaryUploadedFile | None = None

    def new_file(self, field_name: str, file_name: str, *args: Any, **kwargs: Any) -> None:
        if field_name != FILE_FIELD or self.file is not None:
            raise SkipFile()  # only one file, in the field named "file"
        super().new_file(field_name, file_name, *args, **kwargs)
        self.file = TemporaryUploadedFile(self.file_name or "source", self.content_type, 0, self.charset)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        assert self.file is not None
        self.received += len(raw_data)
        if self.received > self.limit:
            self.file.close()
            raise too_large()
        self.file.write(raw_data)

    def discard(self) -> None:
        """Removes a half-received file (Django closes only the files it finished parsing)."""
        if self.file is not None:
            self.file.close()

    def upload_interrupted(self) -> None:
        # The body ended before the file's closing boundary (a client that went away).
        self.discard()

    def file_complete(self, file_size: int) -> TemporaryUploadedFile | None:
        if self.file is None:
            return None
        self.file.seek(0)
        self.file.size = file_size
        return self.file


def prepare_multipart(request: Request) -> LimitedTemporaryFileHandler:
    """Before ``request.data`` is read: refuse an obviously too large body, stream the file to disk."""
    limit = settings.MEDIA_UPLOAD_MAX_BYTES
    length = request.META.get("CONTENT_LENGTH") or ""
    if length.isdigit() and int(length) > limit + FORM_OVERHEAD:
        raise too_large()
    handler = LimitedTemporaryFileHandler(request._request, limit)
    request._request.upload_handlers = [handler]
    return handler


def receive_body(request: Request, filename: str) -> TemporaryUploadedFile:
    """The raw request body (the API upload URL), streamed to a temporary file."""
    limit = settings.MEDIA_UPLOAD_MAX_BYTES
    length = request.META.get("CONTENT_LENGTH") or ""
    if not length.isdigit():
        raise ApiError(
            status.HTTP_411_LENGTH_REQUIRED, "length_required", "Send the file with a Content-Length."
        )
    expected = int(length)
    if expected > limit:
        raise too_large()
    if expected == 0:
        raise ApiError(status.HTTP_400_BAD_REQUEST, "empty_upload", "The request body is empty.")
    content_type = request.content_type.split(";", 1)[0].strip() or "application/octet-stream"
    upload = TemporaryUploadedFile(filename, content_type, 0, None)
    stream = request._request
    received = 0
    try:
        while received < expected:
            data = stream.read(min(CHUNK, expected - received))
            if not data:
                break
            received += len(data)
            upload.write(data)
    except BaseException:
        upload.close()
        raise
    if received != expected:
        upload.close()
        raise ApiError(
            status.HTTP_400_BAD_REQUEST,
            "incomplete_upload",
            f"The body ended after {received} of {expected} bytes.",
        )
    upload.seek(0)
    upload.size = received
    return upload
