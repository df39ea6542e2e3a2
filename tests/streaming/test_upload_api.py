"""Upload intake on the filesystem backend: multipart create, upload targets, the upload URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from streaming.models import MediaFile
from videos.models import Video


def _enqueued(callbacks) -> int:
    """How many transcodes the committed transaction queued."""
    return sum(getattr(callback, "func", callback).__name__ == "_publish_transcode" for callback in callbacks)


pytestmark = pytest.mark.django_db


def _stored_files(media_root: Path) -> list[Path]:
    videos = media_root / "videos"
    return [p for p in videos.rglob("*") if p.is_file()] if videos.exists() else []


def _multipart(client, path: Path, **fields):
    with open(path, "rb") as handle:
        return client.post("/api/videos/create", {"file": handle, **fields}, format="multipart")


def test_multipart_create_stores_the_file_and_queues_transcoding(
    user_client, user, clip, media_root, django_capture_on_commit_callbacks
):
    source = clip(width=640, height=360)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = _multipart(
            user_client, source, title="  Holiday ", tags=["Sea", "sun"], privacy="unlisted"
        )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["title"], body["tags"], body["privacy"]) == ("Holiday", ["sea", "sun"], "unlisted")
    assert body["status"] == "processing"
    assert body["duration"] == pytest.approx(2.0, abs=0.2)
    assert body["upload"] is None
    media = body["media"]
    assert (media["status"], media["width"], media["height"]) == ("uploaded", 640, 360)
    assert media["video_codec"] == "h264" and media["audio_codec"] == "aac"
    media_file = MediaFile.objects.get(video_id=body["id"])
    assert (media_root / media_file.source_path).read_bytes() == source.read_bytes()
    assert media_file.source_size == source.stat().st_size
    assert _enqueued(callbacks) == 1  # the transcode is enqueued when the transaction commits


def test_both_create_paths_take_multipart(user_client, clip):
    source = clip(width=640, height=360)
    with open(source, "rb") as handle:
        response = user_client.post("/api/videos", {"file": handle, "title": "x"}, format="multipart")
    assert response.status_code == 201
    assert response.json()["media"]["status"] == "uploaded"


def test_multipart_over_the_limit_is_413_and_changes_nothing(user_client, clip, settings, media_root):
    source = clip(width=640, height=360)
    settings.MEDIA_UPLOAD_MAX_BYTES = source.stat().st_size - 1
    before = _stored_files(media_root)
    response = _multipart(user_client, source, title="Too big")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert not Video.objects.exists() and not MediaFile.objects.exists()
    assert _stored_files(media_root) == before


def test_a_body_far_over_the_limit_is_refused_before_it_is_read(user_client, settings, scratch_dir):
    settings.MEDIA_UPLOAD_MAX_BYTES = 10
    big = scratch_dir / "big.mp4"
    big.write_bytes(b"\0" * (1024 * 1024 + 100))
    response = _multipart(user_client, big, title="Too big")
    assert response.status_code == 413
    assert not Video.objects.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"hello, I am text\n" * 50, "not a readable media file"), (b"", "not a readable media file")],
    ids=["text", "empty"],
)
def test_multipart_with_a_non_video_is_422_and_changes_nothing(
    user_client, scratch_dir, media_root, content, message
):
    path = scratch_dir / "notes.mp4"
    path.write_bytes(content)
    before = _stored_files(media_root)
    response = _multipart(user_client, path, title="Not a video")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_media" and message in error["message"]
    assert not Video.objects.exists()
    assert _stored_files(media_root) == before


def test_multipart_audio_only_is_422_saying_why(user_client, scratch_dir):
    import subprocess

    path = scratch_dir / "tone.m4a"
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "sine=duration=1",
            "-c:a",
            "aac",
            str(path),
        ],
        check=True,
    )
    response = _multipart(user_client, path, title="Tone")
    assert response.status_code == 422
    assert "no video stream" in response.json()["error"]["message"]


def test_multipart_needs_the_file_and_valid_metadata(user_client, clip, media_root):
    before = _stored_files(media_root)
    response = user_client.post("/api/videos/create", {"title": "No file"}, format="multipart")
    assert response.status_code == 400
    assert "file" in response.json()["error"]["fields"]
    response = _multipart(user_client, clip(width=640, height=360), title="", privacy="secret")
    assert response.status_code == 400
    assert {"title", "privacy"} <= set(response.json()["error"]["fields"])
    assert not Video.objects.exists() and _stored_files(media_root) == before


def test_multipart_needs_authentication(api_client, clip):
    response = _multipart(api_client, clip(width=640, height=360), title="x")
    assert response.status_code == 401
    assert not Video.objects.exists()


def test_metadata_create_answers_the_api_upload_url(user_client):
    response = user_client.post(
        "/api/videos/create",
        {"title": "Later", "file_name": "My Trip!.mov", "content_type": "video/quicktime", "file_size": 1234},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "awaiting_upload" and body["media"] is None
    upload = body["upload"]
    assert upload["method"] == "PUT"
    assert upload["url"] == f"/api/videos/{body['id']}/upload"
    assert upload["complete_url"] == f"/api/videos/{body['id']}/upload/complete"
    assert upload["headers"] == {"Content-Type": "video/quicktime"}
    media_file = MediaFile.objects.get(video_id=body["id"])
    assert media_file.status == "awaiting_upload"
    folder, attempt, name = media_file.source_path.rsplit("/", 2)
    assert (folder, name) == (f"videos/{body['id']}/source", "My_Trip_.mov") and len(attempt) == 12


def test_declared_size_over_the_limit_is_413_and_changes_nothing(user_client, settings):
    settings.MEDIA_UPLOAD_MAX_BYTES = 1000
    response = user_client.post("/api/videos/create", {"title": "Big", "file_size": 1001}, format="json")
    assert response.status_code == 413
    assert not Video.objects.exists() and not MediaFile.objects.exists()


@pytest.mark.parametrize(
    "payload",
    [
        {"title": "x", "file_size": 0},
        {"title": "x", "file_size": "lots"},
        {"title": "x", "content_type": "mp4"},
    ],
)
def test_bad_upload_hints_are_400(user_client, payload):
    assert user_client.post("/api/videos/create", payload, format="json").status_code == 400
    assert not Video.objects.exists()


def _create(client) -> str:
    return client.post("/api/videos/create", {"title": "Later"}, format="json").json()["id"]


def _put(client, video_id: str, data: bytes, content_type: str = "video/mp4"):
    return client.generic("PUT", f"/api/videos/{video_id}/upload", data, content_type=content_type)


def test_put_to_the_upload_url_stores_and_queues(
    user_client, clip, media_root, django_capture_on_commit_callbacks
):
    video_id = _create(user_client)
    data = clip(width=640, height=360).read_bytes()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = _put(user_client, video_id, data)
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "uploaded"
    assert _enqueued(callbacks) == 1
    media_file = MediaFile.objects.get(video_id=video_id)
    assert (media_root / media_file.source_path).read_bytes() == data
    assert Video.objects.get(pk=video_id).status == Video.Status.PROCESSING
    # Completing afterwards is harmless: it answers the current state.
    complete = user_client.post(f"/api/videos/{video_id}/upload/complete", {}, format="json")
    assert complete.status_code == 202 and complete.json()["status"] == "uploaded"
    # A second upload while this one is in the pipeline is a conflict.
    assert _put(user_client, video_id, data).status_code == 409


def test_put_a_non_video_marks_the_media_failed_and_says_why(user_client, clip):
    video_id = _create(user_client)
    response = _put(user_client, video_id, b"not a video at all" * 10)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_media"
    media_file = MediaFile.objects.get(video_id=video_id)
    assert media_file.status == "failed" and "not a readable media file" in media_file.error
    assert Video.objects.get(pk=video_id).status == Video.Status.FAILED
    # The owner may try again with a real video.
    retry = _put(user_client, video_id, clip(width=640, height=360).read_bytes())
    assert retry.status_code == 202


def test_put_rules(user_client, other_client, api_client, settings):
    video_id = _create(user_client)
    assert _put(other_client, video_id, b"x").status_code == 403
    assert _put(api_client, video_id, b"x").status_code == 401
    assert _put(user_client, video_id, b"").status_code == 411  # no Content-Length at all
    empty = user_client.generic(
        "PUT", f"/api/videos/{video_id}/upload", b"", content_type="video/mp4", CONTENT_LENGTH="0"
    )
    assert empty.status_code == 400
    settings.MEDIA_UPLOAD_MAX_BYTES = 5
    assert _put(user_client, video_id, b"123456").status_code == 413
    assert MediaFile.objects.get(video_id=video_id).status == "awaiting_upload"


def test_complete_before_anything_was_uploaded_is_409(user_client):
    video_id = _create(user_client)
    response = user_client.post(f"/api/videos/{video_id}/upload/complete", {}, format="json")
    assert response.status_code == 409
    assert "Nothing has been uploaded" in response.json()["error"]["message"]


def test_complete_rejects_unknown_fields(user_client):
    video_id = _create(user_client)
    response = user_client.post(f"/api/videos/{video_id}/upload/complete", {"bogus": 1}, format="json")
    assert response.status_code == 400


def test_media_state_is_for_the_owner(user_client, other_client, api_client, clip):
    video_id = _create(user_client)
    _put(user_client, video_id, clip(width=640, height=360).read_bytes())
    response = user_client.get(f"/api/videos/{video_id}/media")
    assert response.status_code == 200
    assert response.json()["status"] == "uploaded" and response.json()["progress"] == 0
    assert other_client.get(f"/api/videos/{video_id}/media").status_code == 403
    assert api_client.get(f"/api/videos/{video_id}/media").status_code == 401
