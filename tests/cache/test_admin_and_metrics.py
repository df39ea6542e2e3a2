"""Staff purge a video's cache from the admin; admin edits keep the cache true; /metrics counts."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from tests.cache.conftest import requires_redis, wait_for
from tests.factories import VideoFactory
from videoplatform.cache.core import Tiers
from videoplatform.cache.local import MISSING
from videos.models import Video

pytestmark = [requires_redis, pytest.mark.django_db(transaction=True)]

CHANGELIST = "/admin/videos/video/"


@pytest.fixture
def admin_client(staff_user: Any) -> Client:
    client = Client()
    client.force_login(staff_user)
    return client


def action(client: Client, name: str, *videos: Video) -> Any:
    return client.post(CHANGELIST, {"action": name, "_selected_action": [v.pk for v in videos]}, follow=True)


def test_staff_purge_a_video_from_every_process(
    admin_client: Client, api_client: Any, this_process: Tiers, other_process: Tiers
):
    video = VideoFactory(title="Cached")
    api_client.get(f"/api/videos/{video.pk}")
    other_process.fetch("video", video.pk, lambda: "not read")
    other_process.fetch("video", video.pk, lambda: "not read")  # now in the other process's L1
    Video.objects.filter(pk=video.pk).update(title="Fixed by hand")  # a write behind the cache's back
    assert api_client.get(f"/api/videos/{video.pk}").json()["title"] == "Cached"

    response = action(admin_client, "purge_cache", video)
    assert "Purged 1 video(s) from every cache tier" in response.content.decode()
    assert api_client.get(f"/api/videos/{video.pk}").json()["title"] == "Fixed by hand"
    key = ("video", video.pk, "")
    assert wait_for(lambda: other_process.l1.get(key, other_process._epochs["video"]) is MISSING)


def test_admin_bulk_actions_refresh_the_cache(admin_client: Client, api_client: Any):
    video = VideoFactory()
    assert api_client.get(f"/api/videos/{video.pk}").status_code == 200
    action(admin_client, "make_private", video)
    assert api_client.get(f"/api/videos/{video.pk}").status_code == 404
    action(admin_client, "make_public", video)
    assert api_client.get(f"/api/videos/{video.pk}").status_code == 200


def test_an_admin_edit_and_delete_refresh_the_cache(admin_client: Client, api_client: Any):
    video = VideoFactory(title="Old title")
    path = f"/api/videos/{video.pk}"
    api_client.get(path)
    form = {
        "owner": video.owner_id,
        "title": "Edited in the admin",
        "description": video.description,
        "tags": '["test"]',
        "privacy": "public",
        "status": video.status,
    }
    response = admin_client.post(f"{CHANGELIST}{video.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert api_client.get(path).json()["title"] == "Edited in the admin"

    admin_client.post(f"{CHANGELIST}{video.pk}/delete/", {"post": "yes"})
    assert api_client.get(path).status_code == 404


def test_metrics_count_hits_and_misses_per_tier_and_kind(api_client: Any, this_process: Tiers):
    video = VideoFactory()
    for _ in range(3):
        api_client.get(f"/api/videos/{video.pk}")
    metrics = api_client.get("/metrics").content.decode()
    assert 'cache_requests_total{kind="video",result="hit",tier="l1"}' in metrics
    assert 'cache_requests_total{kind="video",result="miss",tier="l2"}' in metrics
    assert 'cache_loads_total{kind="video"}' in metrics
    assert "cache_invalidation_feed_connected" in metrics
