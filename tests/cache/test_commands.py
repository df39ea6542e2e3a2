"""The operator commands: invalidate_cache, warm_cache, cache_stats."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from tests.cache.conftest import requires_redis, wait_for
from tests.factories import PlanFactory, VideoFactory
from videoplatform.cache.core import Tiers
from videoplatform.cache.local import MISSING
from videos.models import Video

pytestmark = [requires_redis, pytest.mark.django_db(transaction=True)]


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_invalidate_needs_a_kind_or_all():
    with pytest.raises(CommandError, match="Name a kind"):
        run("invalidate_cache")
    with pytest.raises(CommandError, match="Name a kind"):
        run("invalidate_cache", "video", "--all")
    with pytest.raises(CommandError):
        run("invalidate_cache", "videos")  # not a kind


def test_invalidate_ids_dry_run_then_for_real(this_process: Tiers, other_process: Tiers):
    for video_id in ("vid_a", "vid_b"):
        this_process.fetch("video", video_id, lambda: "row")
    other_process.fetch("video", "vid_a", lambda: "row")
    other_process.fetch("video", "vid_a", lambda: "row")  # in the other process's L1

    out = run("invalidate_cache", "video", "vid_a", "--dry-run")
    assert out.strip() == (
        "Would invalidate 1 video id(s): vid_a; 1 L2 entry, and their L1 entries in every process."
    )
    assert this_process.remote.read("video", "vid_a", "")[0] is not None  # nothing changed

    out = run("invalidate_cache", "video", "vid_a")
    assert out.startswith("Invalidated 1 video id(s): vid_a; 1 L2 entry")
    assert this_process.remote.read("video", "vid_a", "")[0] is None
    assert this_process.remote.read("video", "vid_b", "")[0] is not None
    assert wait_for(
        lambda: other_process.l1.get(("video", "vid_a", ""), other_process._epochs["video"]) is MISSING
    )


def test_invalidate_a_kind_and_everything(this_process: Tiers, other_process: Tiers):
    for page in ("p1", "p2", "p3"):
        this_process.fetch("feed", "public", lambda: "page", variant=page)
    this_process.fetch("plan", "active", lambda: ["basic"])
    other_process.fetch("feed", "public", lambda: "page", variant="p1")
    other_process.fetch("feed", "public", lambda: "page", variant="p1")

    assert "Would invalidate every feed entry: 3 in L2" in run("invalidate_cache", "feed", "--dry-run")
    assert "Would invalidate 4 L2 entries in all." in run("invalidate_cache", "--all", "--dry-run")

    assert "Invalidated every feed entry: 3 in L2" in run("invalidate_cache", "feed")
    assert wait_for(lambda: other_process._epochs["feed"] == this_process._epochs["feed"])
    assert other_process.fetch("feed", "public", lambda: "new page", variant="p1") == "new page"

    out = run("invalidate_cache", "--all")
    assert "Invalidated every plan entry: 1 in L2" in out
    assert "Invalidated 2 L2 entries in all." in out  # the plans, and the feed page read since
    assert this_process.fetch("plan", "active", lambda: ["premium"]) == ["premium"]


def test_warm_cache_fills_plans_feed_and_most_viewed_videos(api_client: Any, django_assert_num_queries: Any):
    PlanFactory.create_batch(2)
    popular = VideoFactory(ready=True, view_count=1000)
    hidden = VideoFactory(ready=True, view_count=900, privacy=Video.Privacy.PRIVATE)
    VideoFactory.create_batch(3, ready=True)

    out = run("warm_cache", "--feed-pages", "2", "--videos", "2")
    assert "plans          [##############################] 2/2" in out
    assert "feed pages     [##############################] 4/4" in out
    assert "videos         [##############################] 2/2" in out
    assert "Warmed 6 plan and feed entries and 2 videos" in out

    with django_assert_num_queries(0):
        assert api_client.get("/api/subscriptions/plans").status_code == 200
        assert len(api_client.get("/api/videos").json()["data"]) == 4
        assert api_client.get(f"/api/videos/{popular.pk}").json()["view_count"] == 1000
        assert api_client.get(f"/api/videos/{hidden.pk}").status_code == 404  # cached, still private

    assert "(0 read from the database" in run("warm_cache", "--feed-pages", "2", "--videos", "2")


def test_warm_cache_refuses_bad_numbers():
    with pytest.raises(CommandError, match="0 or more"):
        run("warm_cache", "--videos", "-1")


def test_cache_stats_reports_ratios_per_tier_and_kind(this_process: Tiers):
    run("cache_stats", "--reset")
    this_process.fetch("video", "vid_s", lambda: "row")  # L2 miss, a load
    for _ in range(3):
        this_process.fetch("video", "vid_s", lambda: "row")  # L1 hits
    this_process.l1.clear()
    this_process.fetch("video", "vid_s", lambda: "row")  # L1 miss, L2 hit

    document = json.loads(run("cache_stats", "--json", "--keys"))["kinds"]["video"]
    assert document["l1"] == {"hits": 3, "misses": 2, "hit_ratio": 0.6}
    assert (
        document["l2"]["hits"] == 1 and document["l2"]["misses"] == 1 and document["l2"]["hit_ratio"] == 0.5
    )
    assert document["database_loads"] == 1 and document["l2"]["entries"] == 1
    assert document["hit_ratio"] == 0.8

    table = run("cache_stats", "--reset")
    video_row = next(line for line in table.splitlines() if line.strip().startswith("video"))
    assert video_row.split() == ["video", "3", "2", "60.0%", "1", "0", "1", "50.0%", "1", "0", "0", "80.0%"]
    assert json.loads(run("cache_stats", "--json"))["kinds"]["video"]["l1"]["hits"] == 0


def test_commands_say_so_without_redis(settings: Any):
    caches = {**settings.CACHES, "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    with override_settings(CACHES=caches), pytest.raises(CommandError, match="REDIS_URL"):
        run("invalidate_cache", "--all")
