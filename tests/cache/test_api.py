"""What an API client notices of the tiers: warm reads cost no query, writes show at once,
visibility rules hold on cached rows, rolled-back writes leave the cache alone."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from subscriptions.models import Plan
from subscriptions.selectors import plan_cache_invalidate, subscription_get_current
from tests.cache.conftest import QueryCounter, in_threads, requires_redis
from tests.conftest import login_client
from tests.factories import PlanFactory, SubscriptionFactory, UserFactory, VideoFactory
from videoplatform.cache import tiers
from videos import services
from videos.models import Video

pytestmark = [requires_redis, pytest.mark.django_db(transaction=True)]

READY = Video.Status.READY


def detail(video: Video) -> str:
    return f"/api/videos/{video.pk}"


def test_a_warm_video_detail_runs_no_query_for_anonymous_and_signed_in_viewers(
    user: Any, user_client: Any, api_client: Any, django_assert_num_queries: Any
):
    video = VideoFactory(owner=user, title="Warm")
    for client in (api_client, user_client):
        assert client.get(detail(video)).status_code == 200  # cold: the row and its owner are read
    with django_assert_num_queries(0):
        for client in (api_client, user_client, api_client, user_client):
            body = client.get(detail(video)).json()
            assert (body["title"], body["owner"]["username"]) == ("Warm", user.username)
        assert api_client.get(f"{detail(video)}?fields=id,title").json() == {"id": video.pk, "title": "Warm"}


def test_visibility_rules_hold_on_cached_rows(
    user: Any,
    user_client: Any,
    other_client: Any,
    staff_client: Any,
    api_client: Any,
    django_assert_num_queries: Any,
):
    private = VideoFactory(owner=user, privacy=Video.Privacy.PRIVATE)
    adult = VideoFactory(is_adult=True)
    fan = login_client(UserFactory(show_adult_content=True))
    assert user_client.get(detail(private)).status_code == 200  # the owner's read caches the row
    assert fan.get(detail(adult)).status_code == 200
    for client in (other_client, staff_client):
        client.get("/api/videos/vid_none")  # each token's first use reads it from the database
    with django_assert_num_queries(0):
        assert other_client.get(detail(private)).status_code == 404
        assert api_client.get(detail(private)).json() == {
            "error": {"code": "not_found", "message": "Not found."}
        }
        assert staff_client.get(detail(private)).status_code == 200
        assert user_client.get(detail(private)).status_code == 200
        assert api_client.get(detail(adult)).status_code == 404
        assert user_client.get(detail(adult)).status_code == 404
        assert fan.get(detail(adult)).status_code == 200


def test_an_update_shows_at_once_and_comes_from_the_cache(
    user: Any, user_client: Any, api_client: Any, django_assert_num_queries: Any
):
    video = VideoFactory(owner=user, title="Before")
    api_client.get(detail(video))
    api_client.get(detail(video))
    response = user_client.patch(detail(video), {"title": "After", "privacy": "private"}, format="json")
    assert response.status_code == 200
    with django_assert_num_queries(0):  # written through to L2 after the commit
        assert user_client.get(detail(video)).json()["title"] == "After"
        assert api_client.get(detail(video)).status_code == 404  # private now


def test_a_deleted_video_is_gone_at_once(
    user: Any, user_client: Any, api_client: Any, django_assert_num_queries: Any
):
    video = VideoFactory(owner=user)
    api_client.get(detail(video))
    assert user_client.delete(detail(video)).status_code == 204
    with django_assert_num_queries(0):
        assert api_client.get(detail(video)).status_code == 404
        assert user_client.get(detail(video)).status_code == 404


def test_a_rolled_back_update_leaves_every_tier_alone(user: Any, api_client: Any):
    video = VideoFactory(owner=user, title="Kept")
    api_client.get(detail(video))
    before = tiers().remote.read("video", video.pk, "")
    with pytest.raises(RuntimeError), transaction.atomic():
        services.video_update(video=Video.objects.get(pk=video.pk), changes={"title": "Lost"})
        raise RuntimeError("the request fails after the update")
    after = tiers().remote.read("video", video.pk, "")
    assert after[0] is not None and after[0].data["title"] == "Kept"
    assert after[1] == before[1]  # the generation did not move
    assert api_client.get(detail(video)).json()["title"] == "Kept"


def test_feed_pages_are_cached_and_follow_writes(
    user: Any, user_client: Any, api_client: Any, django_assert_num_queries: Any
):
    older = VideoFactory(owner=user, ready=True, title="Older")
    later = VideoFactory(owner=user, ready=True, privacy=Video.Privacy.UNLISTED, title="Later")
    VideoFactory(ready=True, is_adult=True)
    assert [v["id"] for v in api_client.get("/api/videos").json()["data"]] == [older.pk]
    with django_assert_num_queries(0):
        assert [v["id"] for v in api_client.get("/api/videos").json()["data"]] == [older.pk]
        assert api_client.get("/api/videos").json()["data"][0]["owner"]["id"] == user.pk

    user_client.patch(detail(later), {"privacy": "public"}, format="json")
    assert [v["id"] for v in api_client.get("/api/videos").json()["data"]] == [later.pk, older.pk]

    # Each field selection, page size and adult preference is its own entry.
    assert api_client.get("/api/videos?fields=id,title").json()["data"] == [
        {"id": later.pk, "title": "Later"},
        {"id": older.pk, "title": "Older"},
    ]
    assert api_client.get("/api/videos?limit=1").json()["pagination"]["total_pages"] == 2
    fan = login_client(UserFactory(show_adult_content=True))
    assert len(fan.get("/api/videos").json()["data"]) == 3


def test_an_owners_new_name_shows_on_cached_videos_and_pages(user: Any, user_client: Any, api_client: Any):
    video = VideoFactory(owner=user, ready=True)
    api_client.get(detail(video))
    api_client.get("/api/videos")
    assert user_client.patch("/api/auth/me", {"display_name": "New Name"}, format="json").status_code == 200
    assert api_client.get(detail(video)).json()["owner"]["display_name"] == "New Name"
    assert api_client.get("/api/videos").json()["data"][0]["owner"]["display_name"] == "New Name"


def test_the_media_pipeline_state_shows_on_cached_videos_and_feed(user: Any, api_client: Any):
    video = VideoFactory(owner=user)
    api_client.get(detail(video))
    assert api_client.get("/api/videos").json()["data"] == []
    services.video_media_state_set(video_id=video.pk, status=READY, duration=12.5)
    assert api_client.get(detail(video)).json()["status"] == "ready"
    assert [v["id"] for v in api_client.get("/api/videos").json()["data"]] == [video.pk]


# --- plans and subscriptions -------------------------------------------------------------------------


def test_plans_are_cached_until_they_change(api_client: Any, django_assert_num_queries: Any):
    plan = PlanFactory(name="Basic")
    assert plan.code in [p["code"] for p in api_client.get("/api/subscriptions/plans").json()["data"]]
    with django_assert_num_queries(0):
        api_client.get("/api/subscriptions/plans")
    Plan.objects.filter(pk=plan.pk).update(name="Renamed")  # as the admin does
    plan_cache_invalidate()
    names = {p["code"]: p["name"] for p in api_client.get("/api/subscriptions/plans").json()["data"]}
    assert names[plan.code] == "Renamed"


def test_a_users_subscription_is_cached_and_follows_the_services(
    user: Any, user_client: Any, settings: Any, django_assert_num_queries: Any
):
    settings.SUBSCRIPTIONS_PAYMENT_GATEWAY = "tests.subscriptions.gateways.RecordingGateway"
    first, second = PlanFactory(), PlanFactory()
    SubscriptionFactory(user=user, plan=first)
    assert user_client.get("/api/subscriptions/me").json()["plan"]["code"] == first.code
    with django_assert_num_queries(0):
        assert user_client.get("/api/subscriptions/me").json()["cancel_at_period_end"] is False

    assert user_client.post("/api/subscriptions/me/cancel").status_code == 200
    with django_assert_num_queries(0):
        assert user_client.get("/api/subscriptions/me").json()["cancel_at_period_end"] is True

    assert user_client.post("/api/subscriptions", {"plan_id": second.pk}, format="json").status_code == 201
    assert user_client.get("/api/subscriptions/me").json()["plan"]["code"] == second.code


def test_a_cached_subscription_ends_with_its_period(user: Any, monkeypatch: Any):
    subscription = SubscriptionFactory(user=user, current_period_end=timezone.now() + timedelta(days=1))
    assert subscription_get_current(user=user).pk == subscription.pk  # cached now

    class Tomorrow:
        @staticmethod
        def now() -> Any:
            return timezone.now() + timedelta(days=2)

    monkeypatch.setattr("subscriptions.selectors.timezone", Tomorrow)
    assert subscription_get_current(user=user) is None


# --- stampede, through the real selectors -----------------------------------------------------------


def test_concurrent_misses_on_the_plan_list_make_one_query():
    from subscriptions.selectors import plan_list_active

    PlanFactory.create_batch(3)
    counter = QueryCounter(first_delay=0.3)
    results = in_threads(16, lambda: len(plan_list_active()), counter)
    assert len(set(results)) == 1 and isinstance(results[0], int)
    assert counter.count == 1, counter.statements


def test_concurrent_misses_on_a_video_make_one_query_per_row(user: Any):
    from django.contrib.auth.models import AnonymousUser

    from videos.selectors import video_get

    video = VideoFactory(owner=user)
    counter = QueryCounter(first_delay=0.3)
    results = in_threads(
        16, lambda: video_get(video_id=video.pk, viewer=AnonymousUser()).owner.username, counter
    )
    assert results == [user.username] * 16
    assert counter.count == 2, counter.statements  # the video, then its owner's profile


def test_the_cached_path_applies_exactly_the_visibility_rules_of_the_query(user: Any, settings: Any):
    """Every viewer against every kind of video: the cached answer is the database's answer."""
    from django.contrib.auth.models import AnonymousUser
    from django.http import Http404

    from videos.selectors import video_get

    viewers = {
        "anonymous": AnonymousUser(),
        "owner": user,
        "someone": UserFactory(),
        "adult fan": UserFactory(show_adult_content=True),
        "staff": UserFactory(is_staff=True),
    }
    videos = [
        VideoFactory(owner=user, privacy=privacy, is_adult=adult)
        for privacy in Video.Privacy.values
        for adult in (False, True)
    ]

    def answers(enabled: bool) -> dict[tuple[str, str], bool]:
        settings.CACHE_TIERS_ENABLED = enabled
        seen = {}
        for name, viewer in viewers.items():
            for video in videos:
                try:
                    video_get(video_id=video.pk, viewer=viewer)
                    seen[(name, f"{video.privacy}{' adult' if video.is_adult else ''}")] = True
                except Http404:
                    seen[(name, f"{video.privacy}{' adult' if video.is_adult else ''}")] = False
        return seen

    from_database = answers(False)
    assert answers(True) == from_database
    assert answers(True) == from_database  # warm this time
    assert from_database[("anonymous", "unlisted")] and not from_database[("anonymous", "public adult")]
    assert from_database[("adult fan", "public adult")] and not from_database[("someone", "private")]
