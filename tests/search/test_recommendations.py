"""Related videos: co-watch from watch history when there is enough, otherwise tag and title
similarity; served from storage (and the cache), filtered by what the viewer may see."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from django.db import connection
from django.test.utils import CaptureQueriesContext

from streaming.models import WatchEvent
from tests.conftest import login_client
from tests.factories import UserFactory, VideoFactory
from tests.jobs.support import broker_key
from videos import recommendations
from videos.models import RelatedVideos, Video
from videos.search import search_index_update

pytestmark = pytest.mark.django_db


def ready(title: str, tags: list[str], **fields: Any) -> Video:
    video = VideoFactory(title=title, tags=tags, ready=True, **fields)
    search_index_update(video_ids=[video.pk])
    return video


def watched(*videos: Video, viewers: int) -> None:
    for _ in range(viewers):
        user = UserFactory()
        for video in videos:
            WatchEvent.objects.using("default").create(user_id=user.pk, video_id=video.pk)


def related(client: Any, video: Video, query: str = "") -> list[str]:
    response = client.get(f"/api/videos/{video.pk}/recommendations{query}")
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["data"]]


def test_co_watched_videos_come_first_then_similar_ones(api_client: Any, settings: Any) -> None:
    settings.RECOMMENDATIONS_MIN_COWATCHERS = 2
    knots = ready("Sailing knots explained", ["sailing", "knots"])
    storm = ready("Storm at sea", ["weather"])  # nothing in common but its viewers
    once = ready("Street food tour", ["food"])  # watched with it by one viewer only
    bowline = ready("The bowline knot", ["knots"])  # shares a tag and a title word
    ready("Chess openings", ["chess"])  # unrelated
    watched(knots, storm, viewers=3)
    watched(knots, once, viewers=1)

    recommendations.related_refresh()
    items = RelatedVideos.objects.get(video=knots).items
    assert [(item["video_id"], item["source"]) for item in items] == [
        (storm.pk, "cowatch"),
        (bowline.pk, "similar"),
    ]
    assert related(api_client, knots) == [storm.pk, bowline.pk]


def test_without_watch_history_tags_and_titles_decide(api_client: Any) -> None:
    pasta = ready("Fresh pasta by hand", ["cooking", "italian"])
    same_tags = ready("Risotto basics", ["cooking", "italian"])
    one_tag = ready("Knife skills", ["cooking"])
    title_word = ready("Pasta shapes of Italy", ["history"])
    ready("Mountain biking", ["sport"])
    recommendations.related_update(video_id=pasta.pk)
    assert related(api_client, pasta) == [same_tags.pk, one_tag.pk, title_word.pk]


def test_what_the_viewer_may_not_see_is_never_recommended(api_client: Any) -> None:
    base = ready("Guitar lesson one", ["guitar"])
    shown = ready("Guitar lesson two", ["guitar"])
    private = ready("Guitar lesson three", ["guitar"])
    adult = ready("Guitar lesson four", ["guitar"], is_adult=True)
    recommendations.related_update(video_id=base.pk)
    Video.objects.filter(pk=private.pk).update(privacy=Video.Privacy.PRIVATE)  # after it was computed

    assert related(api_client, base) == [shown.pk]
    opted_in = login_client(UserFactory(show_adult_content=True))
    assert sorted(related(opted_in, base)) == sorted([shown.pk, adult.pk])
    # The private video's owner does not get it recommended either.
    assert related(login_client(private.owner), base) == [shown.pk]


def test_an_invisible_video_has_no_recommendations_to_show(api_client: Any) -> None:
    hidden = ready("Secret", ["x"], privacy=Video.Privacy.PRIVATE)
    for path in (f"/api/videos/{hidden.pk}/recommendations", "/api/videos/vid_nope/recommendations"):
        response = api_client.get(path)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


def test_reads_are_paginated_and_served_from_the_cache(
    api_client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    base = ready("Birds of prey", ["birds"])
    others = [ready(f"Birds {index}", ["birds"]) for index in range(3)]
    recommendations.related_update(video_id=base.pk)
    body = api_client.get(f"/api/videos/{base.pk}/recommendations?limit=2&fields=id").json()
    assert body["pagination"] == {"total": 3, "page": 1, "limit": 2, "total_pages": 2, "has_more": True}
    assert all(list(item) == ["id"] for item in body["data"])
    assert {item["id"] for item in body["data"]} <= {video.pk for video in others}

    with CaptureQueriesContext(connection) as queries:
        related(api_client, base)
    assert not any("videos_relatedvideos" in query["sql"] for query in queries.captured_queries)

    # A recomputation replaces the cached list at once.
    Video.objects.filter(pk=others[0].pk).update(tags=["fish"], title="Trout")
    search_index_update(video_ids=[others[0].pk])
    with django_capture_on_commit_callbacks(execute=True):
        recommendations.related_update(video_id=base.pk)
    assert others[0].pk not in related(api_client, base)


@pytest.mark.django_db(transaction=True)
def test_a_video_not_computed_yet_answers_empty_and_queues_its_job_once(
    redis_broker: str, api_client: Any
) -> None:
    video = ready("Brand new", ["new"])
    assert related(api_client, video) == []
    assert related(api_client, video) == []
    broker = redis.Redis.from_url(redis_broker)
    queued = [
        json.loads(raw)["headers"]["task"]
        for raw in broker.lrange(broker_key("recommendation\x06\x166"), 0, -1)
    ]
    assert queued == ["videos.tasks.recommend_video"]
