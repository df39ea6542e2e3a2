"""The S3 path against the local S3-compatible server: presigned uploads, the ladder in the bucket,
media served from it."""

from __future__ import annotations

import urllib.request
from typing import Any
from urllib.parse import urlparse

import pytest

from streaming import services
from streaming.models import MediaFile
from tests.streaming.conftest import S3_ENDPOINT, upload_to_target


def _enqueued(callbacks) -> int:
    """How many transcodes the committed transaction queued."""
    return sum(getattr(callback, "func", callback).__name__ == "_publish_transcode" for callback in callbacks)


pytestmark = [pytest.mark.django_db, pytest.mark.services]

ENDPOINT = S3_ENDPOINT


def _put(url: str, data: bytes, headers: dict[str, str]) -> str:
    request = urllib.request.Request(url, data=data, method="PUT", headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.headers.get("ETag", "")


def _create(client, **fields) -> dict[str, Any]:
    response = client.post("/api/videos/create", {"title": "S3", **fields}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_presigned_upload_then_complete_then_transcode_into_the_bucket(
    user_client, bucket, clip, django_capture_on_commit_callbacks
):
    data = clip(width=640, height=360).read_bytes()
    body = _create(user_client, file_name="trip.mp4", content_type="video/mp4", file_size=len(data))
    upload = body["upload"]
    assert (upload["method"], upload["url"]) == ("POST", f"{ENDPOINT}/{bucket.name}")
    assert upload["fields"]["key"].startswith(f"uploads/{body['id']}/") and upload["fields"]["key"].endswith(
        "/trip.mp4"
    )
    assert upload["multipart"] is None and upload["expires_at"] and upload["max_bytes"] == len(data)
    upload_to_target(upload, data)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = user_client.post(upload["complete_url"], {}, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "uploaded" and response.json()["width"] == 640
    assert _enqueued(callbacks) == 1

    media_file = MediaFile.objects.get(video_id=body["id"])
    with django_capture_on_commit_callbacks(execute=True):
        services.media_file_transcode(media_file_id=media_file.pk)
    media_file.refresh_from_db()
    assert media_file.status == "ready", media_file.error
    keys = {obj.key for obj in bucket.objects.filter(Prefix=media_file.output_prefix + "/")}
    assert f"{media_file.output_prefix}/360p/index.m3u8" in keys
    assert f"{media_file.output_prefix}/master_360.m3u8" in keys
    segment = next(key for key in keys if key.endswith(".ts"))
    head = bucket.Object(segment)
    assert head.cache_control == "public, max-age=31536000, immutable"
    assert head.content_type == "video/mp2t"

    # Played back through the app, which reads the bucket.
    stream = user_client.get(f"/api/videos/{body['id']}/stream").json()
    rendition_url = urlparse(stream["renditions"][0]["url"]).path
    playlist = user_client.get(rendition_url)
    assert playlist.status_code == 200
    name = next(line for line in playlist.content.decode().splitlines() if line and not line.startswith("#"))
    part = user_client.get(rendition_url.rsplit("/", 1)[0] + "/" + name, HTTP_RANGE="bytes=0-187")
    assert part.status_code == 206
    content = b"".join(part.streaming_content)
    assert len(content) == 188 and content[0] == 0x47  # an MPEG-TS packet
    assert (
        content
        == bucket.Object(f"{media_file.output_prefix}/360p/{name}").get(Range="bytes=0-187")["Body"].read()
    )


def test_large_declared_size_gets_a_multipart_upload(
    user_client, bucket, clip, settings, django_capture_on_commit_callbacks
):
    settings.MEDIA_UPLOAD_MULTIPART_THRESHOLD = 1000
    data = clip(width=640, height=360).read_bytes()
    body = _create(user_client, file_name="big.mp4", content_type="video/mp4", file_size=len(data))
    multipart = body["upload"]["multipart"]
    assert body["upload"]["url"] is None
    assert len(multipart["parts"]) == 1 and multipart["part_size"] >= len(data)
    etag = _put(multipart["parts"][0]["url"], data, {"Content-Type": "application/octet-stream"})
    # Completing without the parts cannot work.
    assert user_client.post(body["upload"]["complete_url"], {}, format="json").status_code == 409
    with django_capture_on_commit_callbacks(execute=True):
        response = user_client.post(
            body["upload"]["complete_url"], {"parts": [{"part_number": 1, "etag": etag}]}, format="json"
        )
    assert response.status_code == 202, response.content
    media_file = MediaFile.objects.get(video_id=body["id"])
    assert media_file.source_path.startswith(f"videos/{body['id']}/source/")
    assert bucket.Object(media_file.source_path).content_length == len(data)
    # The staging key is gone, and no multipart upload is left open.
    assert not list(bucket.objects.filter(Prefix=f"uploads/{body['id']}/"))
    assert not bucket.meta.client.list_multipart_uploads(Bucket=bucket.name).get("Uploads")


def test_complete_of_a_non_video_is_422_and_marks_it_failed(user_client, bucket):
    body = _create(user_client, file_name="notes.mp4", content_type="video/mp4")
    upload_to_target(body["upload"], b"just text" * 100)
    response = user_client.post(body["upload"]["complete_url"], {}, format="json")
    assert response.status_code == 422
    media_file = MediaFile.objects.get(video_id=body["id"])
    assert media_file.status == "failed" and "not a readable media file" in media_file.error


def test_complete_of_an_oversized_upload_is_413_and_removes_it(user_client, bucket, settings):
    body = _create(user_client, file_name="big.mp4", content_type="video/mp4")
    upload_to_target(body["upload"], b"\0" * 2000)
    settings.MEDIA_UPLOAD_MAX_BYTES = 1000
    response = user_client.post(body["upload"]["complete_url"], {}, format="json")
    assert response.status_code == 413
    assert not list(bucket.objects.filter(Prefix=f"videos/{body['id']}/"))
    assert not list(bucket.objects.filter(Prefix=f"uploads/{body['id']}/"))
    assert MediaFile.objects.get(video_id=body["id"]).status == "awaiting_upload"


def test_multipart_create_streams_the_file_into_the_bucket(user_client, bucket, clip):
    source = clip(width=640, height=360)
    with open(source, "rb") as handle:
        response = user_client.post("/api/videos/create", {"file": handle, "title": "x"}, format="multipart")
    assert response.status_code == 201, response.content
    media_file = MediaFile.objects.get(video_id=response.json()["id"])
    assert bucket.Object(media_file.source_path).get()["Body"].read() == source.read_bytes()


@pytest.mark.parametrize(
    ("forge", "status", "code"),
    [
        (
            lambda etag: [{"part_number": 1, "etag": '"0123456789abcdef0123456789abcdef"'}],
            400,
            "invalid_upload_parts",
        ),
        (lambda etag: [{"part_number": 2, "etag": etag}], 400, "invalid_upload_parts"),
        (
            lambda etag: [{"part_number": 1, "etag": etag}, {"part_number": 1, "etag": etag}],
            400,
            "invalid_upload_parts",
        ),
        (lambda etag: [{"part_number": 1, "etag": "not an etag"}], 400, "invalid_upload_parts"),
    ],
    ids=["wrong-etag", "wrong-part-number", "repeated-part", "garbage-etag"],
)
def test_forged_parts_are_a_clean_4xx_and_change_nothing(
    user_client, bucket, clip, settings, forge, status, code
):
    settings.MEDIA_UPLOAD_MULTIPART_THRESHOLD = 1000
    data = clip(width=640, height=360).read_bytes()
    body = _create(user_client, file_name="big.mp4", content_type="video/mp4", file_size=len(data))
    etag = _put(
        body["upload"]["multipart"]["parts"][0]["url"], data, {"Content-Type": "application/octet-stream"}
    )
    response = user_client.post(body["upload"]["complete_url"], {"parts": forge(etag)}, format="json")
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code
    assert MediaFile.objects.get(video_id=body["id"]).status == "awaiting_upload"
    # The honest completion still works afterwards.
    response = user_client.post(
        body["upload"]["complete_url"], {"parts": [{"part_number": 1, "etag": etag}]}, format="json"
    )
    assert response.status_code == 202, response.content


def test_completing_an_aborted_multipart_upload_is_a_clean_error(user_client, bucket, clip, settings):
    settings.MEDIA_UPLOAD_MULTIPART_THRESHOLD = 1000
    data = clip(width=640, height=360).read_bytes()
    body = _create(user_client, file_name="big.mp4", content_type="video/mp4", file_size=len(data))
    etag = _put(
        body["upload"]["multipart"]["parts"][0]["url"], data, {"Content-Type": "application/octet-stream"}
    )
    media_file = MediaFile.objects.get(video_id=body["id"])
    bucket.meta.client.abort_multipart_upload(
        Bucket=bucket.name, Key=media_file.upload_key, UploadId=media_file.upload_id
    )
    response = user_client.post(
        body["upload"]["complete_url"], {"parts": [{"part_number": 1, "etag": etag}]}, format="json"
    )
    # S3 answers NoSuchUpload (409 upload_conflict); the local server answers 500 (503, retry).
    assert (response.status_code, response.json()["error"]["code"]) in {
        (409, "upload_conflict"),
        (503, "service_unavailable"),
    }, response.content
    assert MediaFile.objects.get(video_id=body["id"]).status == "awaiting_upload"
