"""Media does not outlive its video, nor a link the access it was signed under: deleting a video
(by any path) removes its stored media and refuses its links at once; a privacy or premium change
revokes the links signed before it; the sweep removes what a lost job left and re-enqueues a
transcode whose message was lost."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from streaming import media, storage
from streaming.models import MediaFile
from tests.streaming.conftest import upload_to_target
from videos.models import Video

pytestmark = pytest.mark.django_db


@pytest.fixture
def eager_jobs() -> Iterator[None]:
    """Jobs run in the process when enqueued (the deletion job, a requeued transcode)."""
    from videoplatform.celery import app

    saved = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = saved


def _links(client: Any, video: Video) -> list[str]:
    body = client.get(f"/api/videos/{video.pk}/stream").json()
    rendition = urlparse(body["renditions"][0]["url"]).path
    return [
        urlparse(body["master_playlist_url"]).path,
        rendition,
        rendition.rsplit("/", 1)[0] + "/seg_00000.ts",
    ]


def _stored(media_root: Path, video: Video) -> Path:
    """The video's folder in storage, with a source file in it (as an upload leaves)."""
    folder = media_root / "videos" / video.pk
    (folder / "source" / "a1").mkdir(parents=True, exist_ok=True)
    (folder / "source" / "a1" / "clip.mp4").write_bytes(b"source")
    return folder


def test_deleting_a_video_removes_its_media_and_refuses_its_links(
    user_client, user, ready_video, media_root, shared_ladder, eager_jobs, django_capture_on_commit_callbacks
):
    video = ready_video(owner=user)
    folder = _stored(media_root, video)
    links = _links(user_client, video)
    assert [user_client.get(link).status_code for link in links] == [200, 200, 200]
    with django_capture_on_commit_callbacks(execute=True):
        assert user_client.delete(f"/api/videos/{video.pk}").status_code == 204
    for link in links:
        response = user_client.get(link)
        assert response.status_code == 404 and response["Cache-Control"] == "no-store"
    assert not folder.exists()
    assert (shared_ladder["dir"] / "master.m3u8").exists()  # only the video's own folder went


def test_deleting_an_account_removes_its_videos_media(
    user, ready_video, media_root, eager_jobs, django_capture_on_commit_callbacks
):
    folders = [_stored(media_root, ready_video(owner=user)) for _ in range(2)]
    with django_capture_on_commit_callbacks(execute=True):
        user.delete()
    assert not any(folder.exists() for folder in folders)


@pytest.mark.services
def test_deleting_a_video_aborts_its_open_multipart_upload(
    user_client, bucket, settings, eager_jobs, django_capture_on_commit_callbacks
):
    settings.MEDIA_UPLOAD_MULTIPART_THRESHOLD = 1000
    body = user_client.post(
        "/api/videos/create", {"title": "big", "file_name": "big.mp4", "file_size": 5000}, format="json"
    ).json()
    upload_to_target({**body["upload"]["multipart"]["parts"][0], "method": "PUT", "headers": {}}, b"x" * 5000)
    client = bucket.meta.client
    assert client.list_multipart_uploads(Bucket=bucket.name).get("Uploads")
    with django_capture_on_commit_callbacks(execute=True):
        assert user_client.delete(f"/api/videos/{body['id']}").status_code == 204
    assert not client.list_multipart_uploads(Bucket=bucket.name).get("Uploads")
    assert not list(bucket.objects.filter(Prefix=f"uploads/{body['id']}/"))


def test_the_sweep_removes_only_old_folders_of_deleted_videos(user, ready_video, media_root):
    alive = _stored(media_root, ready_video(owner=user))
    old, fresh = media_root / "videos" / "vid_gone_old", media_root / "videos" / "vid_gone_fresh"
    for folder in (old, fresh):
        (folder / "hls" / "run1").mkdir(parents=True)
        (folder / "hls" / "run1" / "seg_00000.ts").write_bytes(b"x")
    staging = media_root / storage.STAGING_ROOT / "vid_gone_old" / "a1"
    staging.mkdir(parents=True)
    (staging / "clip.mp4").write_bytes(b"x")
    past = time.time() - 7200
    for folder in (old, media_root / storage.STAGING_ROOT / "vid_gone_old"):
        for path in [folder, *folder.rglob("*")]:
            os.utime(path, (past, past))
    assert media.media_orphans_sweep(grace=3600) == 2
    assert not old.exists() and not (media_root / storage.STAGING_ROOT / "vid_gone_old").exists()
    assert fresh.exists() and alive.exists()


@pytest.mark.django_db(transaction=True)
def test_the_sweep_enqueues_again_a_transcode_whose_message_was_lost(user_client, user, clip, eager_jobs):
    from tests.jobs.support import app_on_broker

    with app_on_broker("redis://127.0.0.1:1/0") as app:
        app.conf.broker_transport_options = {"max_retries": 0}
        app.conf.broker_connection_max_retries = 0
        app._after_fork()
        app.conf.task_always_eager = False
        with open(clip(width=320, height=240), "rb") as handle:
            response = user_client.post(
                "/api/videos/create", {"file": handle, "title": "Lost"}, format="multipart"
            )
        app.conf.task_always_eager = True
    assert response.status_code == 201
    media_file = MediaFile.objects.get(video_id=response.json()["id"])
    assert media_file.status == "uploaded"
    from datetime import timedelta

    assert media.media_stalled_requeue(older_than=timedelta(seconds=10)) == 0  # not stalled yet
    assert media.media_stalled_requeue(older_than=timedelta(0)) == 1
    media_file.refresh_from_db()
    assert media_file.status == "ready", media_file.error


# --- Access changes revoke the links signed before ---------------------------------------------


@pytest.mark.parametrize(
    "change", [{"privacy": "private"}, {"is_premium": True}, {"privacy": "unlisted"}, {"is_adult": True}]
)
def test_an_access_change_revokes_earlier_links(user_client, user, ready_video, change):
    video = ready_video(owner=user)
    links = _links(user_client, video)
    assert user_client.patch(f"/api/videos/{video.pk}", change, format="json").status_code == 200
    for link in links:
        response = user_client.get(link)
        assert response.status_code == 403 and b"revoked" in response.content
        assert response["Cache-Control"] == "no-store"
    # The owner asks again and watches on.
    assert [user_client.get(link).status_code for link in _links(user_client, video)] == [200, 200, 200]


def test_other_edits_keep_links_working(user_client, user, ready_video):
    video = ready_video(owner=user)
    links = _links(user_client, video)
    patch = {"title": "New title", "privacy": "public"}  # public already: no access change
    assert user_client.patch(f"/api/videos/{video.pk}", patch, format="json").status_code == 200
    assert [user_client.get(link).status_code for link in links] == [200, 200, 200]


def test_the_admin_privacy_action_revokes_links(user_client, user, staff_user, ready_video):
    from django.test import Client

    video = ready_video(owner=user)
    links = _links(user_client, video)
    staff_client = Client()
    staff_client.force_login(staff_user)
    staff_client.post("/admin/videos/video/", {"action": "make_private", "_selected_action": [video.pk]})
    assert Video.objects.get(pk=video.pk).privacy == "private"
    assert user_client.get(links[0]).status_code == 403
