"""Admin: media files show progress, state and error; staff can re-run a transcode."""

from __future__ import annotations

import pytest
from django.utils import timezone

from streaming.models import MediaFile
from tests.factories import VideoFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, staff_user):
    client.force_login(staff_user)
    return client


def _enqueued(callbacks) -> int:
    return sum(getattr(callback, "func", callback).__name__ == "_publish_transcode" for callback in callbacks)


def test_changelist_shows_status_progress_and_the_change_page_the_error(admin_client, ready_video):
    processing = MediaFile.objects.create(
        video=VideoFactory(), status="processing", progress=42, source_path="a", heartbeat_at=timezone.now()
    )
    failed = MediaFile.objects.create(
        video=VideoFactory(), status="failed", error="The file has no video stream.", source_path="b"
    )
    ready = MediaFile.objects.get(video=ready_video())
    page = admin_client.get("/admin/streaming/mediafile/").content.decode()
    assert "42 %" in page and "processing" in page and "failed" in page
    detail = admin_client.get(f"/admin/streaming/mediafile/{failed.pk}/change/").content.decode()
    assert "The file has no video stream." in detail
    ready_page = admin_client.get(f"/admin/streaming/mediafile/{ready.pk}/change/").content.decode()
    assert "avc1.64" in ready_page and "1920" in ready_page  # the renditions inline
    assert processing.pk in page


def test_rerun_transcode_action_queues_failed_and_ready_ones(
    admin_client, ready_video, django_capture_on_commit_callbacks
):
    failed = MediaFile.objects.create(video=VideoFactory(), status="failed", error="x", source_path="b")
    ready = MediaFile.objects.get(video=ready_video())
    busy = MediaFile.objects.create(
        video=VideoFactory(),
        status="processing",
        source_path="c",
        heartbeat_at=timezone.now(),
        run_holder="elsewhere:1",
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = admin_client.post(
            "/admin/streaming/mediafile/",
            {"action": "rerun_transcode", "_selected_action": [failed.pk, ready.pk, busy.pk]},
            follow=True,
        )
    assert response.status_code == 200
    text = response.content.decode()
    assert "Queued 2 transcode(s)." in text and "Skipped 1" in text
    assert _enqueued(callbacks) == 2
    failed.refresh_from_db()
    ready.refresh_from_db()
    busy.refresh_from_db()
    assert (failed.status, failed.error) == ("uploaded", "")
    assert ready.status == "uploaded"
    assert busy.status == "processing"


def test_media_files_cannot_be_added_by_hand(admin_client):
    assert admin_client.get("/admin/streaming/mediafile/add/").status_code == 403
