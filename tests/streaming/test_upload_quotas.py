"""What one uploader may send: their plan's longest video and largest source (403 with a code
naming the limit), and their uploads and transcode minutes per 24 hours (429 with Retry-After).
Refusals change nothing: no video, no media file, no stored file."""

from __future__ import annotations

from datetime import timedelta
from typing import cast

import pytest
from django.utils import timezone

from streaming.models import MediaFile
from tests.factories import PlanFactory, SubscriptionFactory, VideoFactory
from videos.models import Video

pytestmark = pytest.mark.django_db


def _post_file(client, path, title="x"):
    with open(path, "rb") as handle:
        return client.post("/api/videos/create", {"file": handle, "title": title}, format="multipart")


def _stored(media_root):
    return sorted(p for p in media_root.rglob("*") if p.is_file())


def _history(user, *, count, duration, hours_ago=1.0):
    """``count`` earlier uploads of ``user``, each ``duration`` seconds long, ``hours_ago`` old."""
    when = timezone.now() - timedelta(hours=hours_ago)
    for _ in range(count):
        video = cast(Video, VideoFactory(owner=user, status=Video.Status.READY))
        MediaFile.objects.create(
            video=video, status=MediaFile.Status.READY, duration=duration, created_at=when, source_path="x"
        )


def test_a_free_uploader_over_the_plan_duration_is_refused(user_client, user, clip, media_root, settings):
    settings.UPLOAD_PLAN_LIMITS = {"free": {"max_duration": 1}}
    before = _stored(media_root)
    response = _post_file(user_client, clip(width=320, height=240, duration=2.0))
    assert response.status_code == 403, response.content
    error = response.json()["error"]
    assert error["code"] == "plan_duration_limit"
    assert "free plan" in error["message"] and "1 minutes" in error["message"]
    assert not Video.objects.filter(owner=user).exists()
    assert _stored(media_root) == before


def test_a_source_above_the_plan_resolution_is_refused_but_a_higher_plan_takes_it(
    user_client, user, clip, settings
):
    settings.UPLOAD_PLAN_LIMITS = {"free": {"max_resolution": 200}, "pro": {"max_resolution": 480}}
    path = clip(width=320, height=240)
    response = _post_file(user_client, path)
    assert response.status_code == 403, response.content
    assert response.json()["error"]["code"] == "plan_resolution_limit"
    assert "200p" in response.json()["error"]["message"]
    assert not Video.objects.filter(owner=user).exists()
    SubscriptionFactory(user=user, plan=PlanFactory(code="pro"))
    assert _post_file(user_client, path).status_code == 201


def test_the_daily_upload_quota_answers_429_with_retry_after(user_client, user, clip, settings):
    settings.UPLOADS_PER_DAY = 2
    _history(user, count=2, duration=2.0, hours_ago=23)
    path = clip(width=320, height=240)
    response = _post_file(user_client, path)
    assert response.status_code == 429, response.content
    assert response.json()["error"]["code"] == "upload_quota_exceeded"
    assert 3000 < int(response["Retry-After"]) <= 3600  # the oldest upload leaves the window in 1 h
    assert Video.objects.filter(owner=user).count() == 2
    # The JSON route (upload target) is held to the same count.
    target = user_client.post("/api/videos/create", {"title": "y", "file_size": 1000}, format="json")
    assert target.status_code == 429 and target.json()["error"]["code"] == "upload_quota_exceeded"
    assert Video.objects.filter(owner=user).count() == 2
    # Uploads older than a day no longer count.
    MediaFile.objects.filter(video__owner=user).update(created_at=timezone.now() - timedelta(hours=25))
    assert _post_file(user_client, path).status_code == 201


def test_the_daily_transcode_minutes_count_accepted_video(user_client, user, clip, settings):
    settings.TRANSCODE_MINUTES_PER_DAY = 2  # 120 s
    _history(user, count=1, duration=119.0)
    response = _post_file(user_client, clip(width=320, height=240, duration=2.0))
    assert response.status_code == 429, response.content
    assert response.json()["error"]["code"] == "transcode_quota_exceeded"
    assert int(response["Retry-After"]) > 0
    assert Video.objects.filter(owner=user).count() == 1
    # A plan may carry its own quota.
    settings.UPLOAD_PLAN_LIMITS = {"free": {"transcode_minutes_per_day": 3}}
    assert _post_file(user_client, clip(width=320, height=240, duration=2.0)).status_code == 201


def test_both_quotas_count_from_the_right_uploads(user_client, user, clip, settings):
    """Uploads begun count towards the upload quota whether or not their file came; only accepted
    video (with a duration) counts towards the minutes, and their Retry-After is when the oldest
    *accepted* one leaves the window, not the oldest upload begun."""
    settings.UPLOADS_PER_DAY = 3
    settings.TRANSCODE_MINUTES_PER_DAY = 2  # 120 s
    begun = cast(Video, VideoFactory(owner=user))  # a target handed out 23 h ago, never used
    MediaFile.objects.create(
        video=begun, status=MediaFile.Status.AWAITING_UPLOAD, created_at=timezone.now() - timedelta(hours=23)
    )
    _history(user, count=1, duration=119.0, hours_ago=2)
    response = _post_file(user_client, clip(width=320, height=240, duration=2.0))
    assert response.status_code == 429, response.content
    assert response.json()["error"]["code"] == "transcode_quota_exceeded"
    assert 22 * 3600 - 60 < int(response["Retry-After"]) <= 22 * 3600  # the accepted one, 2 h old
    _history(user, count=1, duration=0.5, hours_ago=3)  # a third upload: the count is reached
    response = _post_file(user_client, clip(width=320, height=240, duration=2.0))
    assert response.status_code == 429 and response.json()["error"]["code"] == "upload_quota_exceeded"
    assert 3600 - 60 < int(response["Retry-After"]) <= 3600  # the oldest upload begun, 23 h old
    assert Video.objects.filter(owner=user).count() == 3


def test_upload_complete_checks_the_probed_file_and_changes_nothing(
    user_client, user, clip, media_root, settings
):
    created = user_client.post("/api/videos/create", {"title": "y"}, format="json")
    assert created.status_code == 201, created.content
    video_id = created.json()["id"]
    data = clip(width=320, height=240).read_bytes()
    media_file = MediaFile.objects.get(video_id=video_id)
    (media_root / media_file.source_path).parent.mkdir(parents=True, exist_ok=True)
    (media_root / media_file.source_path).write_bytes(data)
    settings.UPLOAD_PLAN_LIMITS = {"free": {"max_resolution": 200}}
    response = user_client.post(f"/api/videos/{video_id}/upload/complete", {}, format="json")
    assert response.status_code == 403, response.content
    assert response.json()["error"]["code"] == "plan_resolution_limit"
    media_file.refresh_from_db()
    assert media_file.status == MediaFile.Status.AWAITING_UPLOAD and media_file.duration is None
    assert Video.objects.get(pk=video_id).status != Video.Status.PROCESSING
    # The uploader's plan allows it once the limit is lifted: the same upload completes.
    settings.UPLOAD_PLAN_LIMITS = {}
    response = user_client.post(f"/api/videos/{video_id}/upload/complete", {}, format="json")
    assert response.status_code == 202, response.content


def test_put_to_the_upload_url_is_held_to_the_transcode_quota(user_client, user, clip, settings):
    created = user_client.post("/api/videos/create", {"title": "y"}, format="json")
    video_id = created.json()["id"]
    settings.TRANSCODE_MINUTES_PER_DAY = 1
    _history(user, count=1, duration=59.0)
    data = clip(width=320, height=240, duration=2.0).read_bytes()
    response = user_client.generic("PUT", f"/api/videos/{video_id}/upload", data, content_type="video/mp4")
    assert response.status_code == 429, response.content
    assert response.json()["error"]["code"] == "transcode_quota_exceeded"
    assert MediaFile.objects.get(video_id=video_id).status == MediaFile.Status.AWAITING_UPLOAD
