"""Media in storage: the filesystem (the embedded default) or S3 through django-storages.

Sources live at ``videos/<video id>/source/<attempt>/<name>`` (one key per accepted upload,
never handed to a client, so it cannot change after it was checked) and each transcode run's
outputs under ``videos/<video id>/hls/<run token>/``. A client uploading to S3 writes to a
staging key ``uploads/<video id>/<attempt>/<name>``, copied to the source key when the upload is
completed; the ``uploads/`` prefix has a lifecycle rule (``bucket_lifecycle_ensure``).
Everything here works on both backends; S3-only operations (presigned uploads) say so.
"""

from __future__ import annotations

import mimetypes
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import Storage, default_storage

IMMUTABLE = "public, max-age=31536000, immutable"
UPLOAD_THREADS = 8
CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".jpg": "image/jpeg",
}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def media_storage() -> Storage:
    return default_storage


def is_s3(storage: Storage | None = None) -> bool:
    return hasattr(storage or media_storage(), "bucket")


def content_type_for(name: str) -> str:
    suffix = os.path.splitext(name)[1].lower()
    return CONTENT_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


def safe_filename(name: str) -> str:
    base = os.path.basename(name or "")
    cleaned = _UNSAFE.sub("_", base).strip("._") or "source"
    return cleaned[-100:]


STAGING_ROOT = "uploads"


def source_name(video_id: str, filename: str, attempt: str | None = None) -> str:
    """The key of one accepted upload (``attempt``: a fresh token unless given)."""
    return f"videos/{video_id}/source/{attempt or secrets.token_hex(6)}/{safe_filename(filename)}"


def staging_name(video_id: str, filename: str, attempt: str) -> str:
    return f"{STAGING_ROOT}/{video_id}/{attempt}/{safe_filename(filename)}"


def video_root(video_id: str) -> str:
    return f"videos/{video_id}"


def hls_root(video_id: str) -> str:
    return f"videos/{video_id}/hls"


def output_prefix(video_id: str, run_token: str) -> str:
    return f"{hls_root(video_id)}/{run_token}"


def _s3_key(storage: Any, name: str) -> str:
    location = (getattr(storage, "location", "") or "").strip("/")
    return f"{location}/{name}" if location else name


def object_key(name: str) -> str:
    """The key of a stored file in the bucket (what a CDN in front of it sees as the path)."""
    storage = media_storage()
    return _s3_key(storage, name) if is_s3(storage) else name


def _s3_client(storage: Any) -> Any:
    return storage.connection.meta.client


def local_work_dir() -> str | None:
    """Where temporary work goes; on the filesystem backend, beside the media, so that
    publishing the outputs is a rename rather than a copy."""
    if settings.TRANSCODE_WORK_DIR:
        Path(settings.TRANSCODE_WORK_DIR).mkdir(parents=True, exist_ok=True)
        return str(settings.TRANSCODE_WORK_DIR)
    storage = media_storage()
    if not is_s3(storage):
        work = Path(storage.path(".work"))
        work.mkdir(parents=True, exist_ok=True)
        return str(work)
    return None


def save_file(name: str, file: IO[bytes] | File, *, content_type: str | None = None) -> str:
    """Stores ``file`` under exactly ``name`` (replacing what was there), streamed in chunks."""
    storage = media_storage()
    if is_s3(storage):
        file.seek(0)
        _s3_client(storage).upload_fileobj(
            file,
            storage.bucket_name,  # type: ignore[attr-defined]
            _s3_key(storage, name),
            ExtraArgs={"ContentType": content_type or content_type_for(name)},
        )
        return name
    if storage.exists(name):
        storage.delete(name)
    return storage.save(name, file if isinstance(file, File) else File(file))


def size_of(name: str) -> int:
    return int(media_storage().size(name))


def exists(name: str) -> bool:
    return bool(media_storage().exists(name))


def delete(name: str) -> None:
    storage = media_storage()
    if storage.exists(name):
        storage.delete(name)


def delete_prefix(prefix: str) -> None:
    """Removes everything under ``prefix/`` (a run's outputs), on either backend."""
    prefix = prefix.strip("/")
    if not prefix:
        raise ValueError("Refusing to delete the whole storage.")
    storage = media_storage()
    if is_s3(storage):
        storage.bucket.objects.filter(Prefix=_s3_key(storage, prefix) + "/").delete()  # type: ignore[attr-defined]
    else:
        shutil.rmtree(storage.path(prefix), ignore_errors=True)


def list_dirs(prefix: str) -> list[str]:
    storage = media_storage()
    try:
        dirs, _files = storage.listdir(prefix)
    except FileNotFoundError:
        return []
    return sorted(dirs)


def publish_dir(local_dir: str, prefix: str) -> None:
    """Puts a finished local output folder at ``prefix`` in storage."""
    storage = media_storage()
    if not is_s3(storage):
        target = Path(storage.path(prefix))
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        shutil.move(local_dir, target)  # a rename when the work folder is on the same disk
        return
    client = _s3_client(storage)
    bucket = storage.bucket_name  # type: ignore[attr-defined]
    files = [path for path in Path(local_dir).rglob("*") if path.is_file()]

    def upload(path: Path) -> None:
        relative = path.relative_to(local_dir).as_posix()
        client.upload_file(
            str(path),
            bucket,
            _s3_key(storage, f"{prefix}/{relative}"),
            ExtraArgs={"ContentType": content_type_for(relative), "CacheControl": IMMUTABLE},
        )

    with ThreadPoolExecutor(max_workers=UPLOAD_THREADS) as pool:
        for _ in pool.map(upload, files):
            pass


@contextmanager
def local_copy(name: str, work_dir: str, *, etag: str = "") -> Iterator[str]:
    """A local path to the stored file ``name``: the file itself on the filesystem backend,
    a download into ``work_dir`` on S3 (removed with ``work_dir``), of exactly the version
    whose ETag is ``etag`` when given (S3 answers 412 for any other)."""
    storage = media_storage()
    if not is_s3(storage):
        path = storage.path(name)
        if not os.path.exists(path):
            raise FileNotFoundError(f"The source {name} is missing from storage.")
        yield path
        return
    target = os.path.join(work_dir, "source" + os.path.splitext(name)[1])
    client = _s3_client(storage)
    bucket, key = storage.bucket_name, _s3_key(storage, name)  # type: ignore[attr-defined]
    if not etag:
        client.download_file(bucket, key, target)
        yield target
        return
    # One conditional GET: the managed download cannot send If-Match.
    response = client.get_object(Bucket=bucket, Key=key, IfMatch=etag)
    with open(target, "wb") as handle:
        for chunk in response["Body"].iter_chunks(1024 * 1024):
            handle.write(chunk)
    yield target


def read_text(name: str) -> str:
    with media_storage().open(name, "rb") as handle:
        return handle.read().decode("utf-8")


def write_text(name: str, text: str) -> None:
    save_file(name, File(_bytes_io(text.encode("utf-8"))), content_type=content_type_for(name))


def _bytes_io(data: bytes) -> IO[bytes]:
    handle = tempfile.SpooledTemporaryFile(max_size=1024 * 1024)  # noqa: SIM115 - returned to caller
    handle.write(data)
    handle.seek(0)
    return handle


def open_range(name: str, start: int, end: int | None) -> tuple[Iterator[bytes], int]:
    """The bytes ``start..end`` (inclusive; ``end`` None for the rest) of a stored file and the
    file's total size. Raises FileNotFoundError."""
    storage = media_storage()
    if is_s3(storage):
        client = _s3_client(storage)
        byte_range = f"bytes={start}-{'' if end is None else end}"
        try:
            response = client.get_object(
                Bucket=storage.bucket_name,  # type: ignore[attr-defined]
                Key=_s3_key(storage, name),
                Range=byte_range,
            )
        except client.exceptions.NoSuchKey as exc:
            raise FileNotFoundError(name) from exc
        content_range = response.get("ContentRange") or ""
        total = int(content_range.rsplit("/", 1)[1]) if "/" in content_range else response["ContentLength"]
        return response["Body"].iter_chunks(64 * 1024), total
    path = storage.path(name)
    total = os.path.getsize(path)
    handle = open(path, "rb")  # noqa: SIM115 - closed by the generator
    handle.seek(start)
    remaining = (total if end is None else end + 1) - start

    def chunks() -> Iterator[bytes]:
        nonlocal remaining
        try:
            while remaining > 0:
                data = handle.read(min(64 * 1024, remaining))
                if not data:
                    break
                remaining -= len(data)
                yield data
        finally:
            handle.close()

    return chunks(), total


def file_size(name: str) -> int:
    """Size of a stored file; FileNotFoundError when it is missing."""
    return stat(name)[0]


def stat(name: str) -> tuple[int, str]:
    """(size, ETag) of a stored file (the ETag is "" on the filesystem); FileNotFoundError."""
    storage = media_storage()
    if is_s3(storage):
        client = _s3_client(storage)
        try:
            head = client.head_object(Bucket=storage.bucket_name, Key=_s3_key(storage, name))  # type: ignore[attr-defined]
        except client.exceptions.ClientError as exc:
            if str((exc.response.get("Error") or {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                raise FileNotFoundError(name) from exc
            raise
        return int(head["ContentLength"]), str(head.get("ETag") or "")
    return os.path.getsize(storage.path(name)), ""


def copy_pinned(source: str, target: str, *, etag: str) -> str:
    """Copies the stored ``source`` (exactly the version with ``etag``) to ``target``; the
    copy's ETag. S3 only: the staging key a client wrote becomes a key no client can write."""
    storage = media_storage()
    client = _s3_client(storage)
    bucket = storage.bucket_name  # type: ignore[attr-defined]
    # The managed copy: one CopyObject up to its threshold, a multipart copy beyond (5 GiB+).
    client.copy(
        {"Bucket": bucket, "Key": _s3_key(storage, source)},
        bucket,
        _s3_key(storage, target),
        ExtraArgs={"CopySourceIfMatch": etag, "MetadataDirective": "COPY"},
    )
    return stat(target)[1]


# --- Presigned uploads (S3 only) ---------------------------------------------------


def presigned_get(name: str, expires: int = 3600) -> str:
    storage = media_storage()
    return str(
        _s3_client(storage).generate_presigned_url(
            "get_object",
            Params={"Bucket": storage.bucket_name, "Key": _s3_key(storage, name)},  # type: ignore[attr-defined]
            ExpiresIn=expires,
        )
    )


def presigned_post(name: str, *, expires: int, content_type: str, max_bytes: int) -> dict[str, Any]:
    """A browser-style POST upload to exactly ``name``: ``{"url", "fields"}``. The signed policy
    makes S3 itself refuse a body larger than ``max_bytes`` (or empty) or of another type."""
    storage = media_storage()
    key = _s3_key(storage, name)
    post = _s3_client(storage).generate_presigned_post(
        storage.bucket_name,  # type: ignore[attr-defined]
        key,
        Fields={"Content-Type": content_type},
        Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, max_bytes]],
        ExpiresIn=expires,
    )
    return {"url": str(post["url"]), "fields": {k: str(v) for k, v in post["fields"].items()}}


def multipart_create(name: str, *, content_type: str) -> str:
    storage = media_storage()
    response = _s3_client(storage).create_multipart_upload(
        Bucket=storage.bucket_name,  # type: ignore[attr-defined]
        Key=_s3_key(storage, name),
        ContentType=content_type,
    )
    return str(response["UploadId"])


def multipart_part_url(name: str, *, upload_id: str, part_number: int, size: int, expires: int) -> str:
    """A presigned URL for one part, its ``Content-Length`` signed (SigV4): S3 refuses a part of
    any other size."""
    storage = media_storage()
    return str(
        _s3_client(storage).generate_presigned_url(
            "upload_part",
            Params={
                "Bucket": storage.bucket_name,  # type: ignore[attr-defined]
                "Key": _s3_key(storage, name),
                "UploadId": upload_id,
                "PartNumber": part_number,
                "ContentLength": size,
            },
            ExpiresIn=expires,
        )
    )


def multipart_abort(name: str, *, upload_id: str) -> None:
    """Aborts an open multipart upload (its parts are billed until then); gone already is fine."""
    from botocore.exceptions import ClientError

    storage = media_storage()
    try:
        _s3_client(storage).abort_multipart_upload(
            Bucket=storage.bucket_name,  # type: ignore[attr-defined]
            Key=_s3_key(storage, name),
            UploadId=upload_id,
        )
    except ClientError as exc:
        if str((exc.response.get("Error") or {}).get("Code")) != "NoSuchUpload":
            raise


LIFECYCLE_RULE_ID = "videoplatform-upload-staging"


def bucket_lifecycle_ensure(*, days: int) -> dict[str, Any]:
    """Adds (or updates) the bucket's lifecycle rule for the staging prefix: incomplete multipart
    uploads are aborted and staged objects expire ``days`` after they were started. Other rules
    of the bucket are kept. Idempotent; returns the rule."""
    from botocore.exceptions import ClientError

    storage = media_storage()
    client = _s3_client(storage)
    bucket = storage.bucket_name  # type: ignore[attr-defined]
    try:
        rules = client.get_bucket_lifecycle_configuration(Bucket=bucket).get("Rules", [])
    except ClientError as exc:
        if str((exc.response.get("Error") or {}).get("Code")) != "NoSuchLifecycleConfiguration":
            raise
        rules = []
    rule = {
        "ID": LIFECYCLE_RULE_ID,
        "Status": "Enabled",
        "Filter": {"Prefix": _s3_key(storage, STAGING_ROOT) + "/"},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": days},
        "Expiration": {"Days": days},
    }
    kept = [r for r in rules if r.get("ID") != LIFECYCLE_RULE_ID]
    client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [*kept, rule]})
    return rule


class MultipartRejected(Exception):
    """S3 refused to assemble the parts (``code``: InvalidPart, NoSuchUpload, EntityTooSmall...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def multipart_complete(name: str, *, upload_id: str, parts: list[dict[str, Any]]) -> None:
    """Assembles the parts. Raises ``MultipartRejected`` when S3 refuses what the client sent
    (a forged ETag or part number, a part too small, an upload already completed or aborted)."""
    from botocore.exceptions import ClientError

    storage = media_storage()
    try:
        _s3_client(storage).complete_multipart_upload(
            Bucket=storage.bucket_name,  # type: ignore[attr-defined]
            Key=_s3_key(storage, name),
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": p["part_number"], "ETag": p["etag"]} for p in parts]},
        )
    except ClientError as exc:
        error = exc.response.get("Error") or {}
        code = str(error.get("Code") or "")
        status = int((exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
        if status >= 500 or not code:
            raise  # the storage service's own trouble: transient
        raise MultipartRejected(code, str(error.get("Message") or code)) from exc


def s3_client_errors() -> tuple[type[BaseException], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)
