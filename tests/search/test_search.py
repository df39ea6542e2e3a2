"""GET /api/search: ranked full-text search (title > tags > description) over public, ready
videos; private, unlisted, unfinished and (unless opted in) adult videos never appear."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from tests.factories import UserFactory, VideoFactory
from videos import search
from videos.models import Video, VideoSearchDocument

pytestmark = pytest.mark.django_db


def indexed(**fields: Any) -> Video:
    """A ready video with its search document (what the indexing job writes)."""
    fields.setdefault("status", Video.Status.READY)
    video = VideoFactory(**fields)
    search.search_index_update(video_ids=[video.pk])
    return video


def titles(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["title"] for item in response.json()["data"]]


def test_title_matches_rank_above_tags_above_descriptions(api_client: Any) -> None:
    described = indexed(title="Evening walk", description="We talk about volcanoes on the way.", tags=[])
    tagged = indexed(title="Island trip", tags=["volcano", "travel"], description="")
    titled = indexed(title="Volcano eruption close up", tags=[], description="")
    indexed(title="Cooking pasta", tags=["food"], description="Nothing about mountains.")

    response = api_client.get("/api/search?q=volcano")
    assert titles(response) == [titled.title, tagged.title, described.title]  # stemming: volcanoes
    assert response.json()["pagination"] == {
        "total": 3,
        "page": 1,
        "limit": 20,
        "total_pages": 1,
        "has_more": False,
    }


def test_web_search_syntax_phrases_and_exclusions(api_client: Any) -> None:
    indexed(title="Red panda eats bamboo")
    indexed(title="Giant panda sleeps")
    assert titles(api_client.get('/api/search?q="red panda"')) == ["Red panda eats bamboo"]
    assert titles(api_client.get("/api/search?q=panda -bamboo")) == ["Giant panda sleeps"]


def test_private_unlisted_unfinished_and_adult_videos_never_appear(api_client: Any, login: Any) -> None:
    owner = UserFactory(show_adult_content=True)
    indexed(title="Glacier public", owner=owner)
    indexed(title="Glacier private", owner=owner, privacy=Video.Privacy.PRIVATE)
    indexed(title="Glacier unlisted", owner=owner, privacy=Video.Privacy.UNLISTED)
    indexed(title="Glacier processing", owner=owner, status=Video.Status.PROCESSING)
    indexed(title="Glacier adult", owner=owner, is_adult=True)

    assert titles(api_client.get("/api/search?q=glacier")) == ["Glacier public"]
    # The owner, who opted in to adult content, finds the adult one but never their private ones.
    assert sorted(titles(login(owner).get("/api/search?q=glacier"))) == ["Glacier adult", "Glacier public"]


def test_field_selection_and_pages(api_client: Any) -> None:
    for index in range(3):
        indexed(title=f"Lighthouse {index}", view_count=index)
    body = api_client.get("/api/search?q=lighthouse&limit=2&page=2&fields=id,title").json()
    assert body["pagination"] == {"total": 3, "page": 2, "limit": 2, "total_pages": 2, "has_more": False}
    assert list(body["data"][0]) == ["id", "title"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("", "q"),
        ("?q=", "q"),
        ("?q=%20%20", "q"),
        ("?q=" + "a" * 201, "q"),
        ("?q=x&limit=0", "limit"),
        ("?q=x&fields=nope", "fields"),
    ],
)
def test_bad_queries_are_a_clear_400(api_client: Any, query: str, field: str) -> None:
    response = api_client.get(f"/api/search{query}")
    assert response.status_code == 400
    body = response.json()["error"]
    assert body["code"] == "validation_error" and field in body["fields"]


def test_odd_input_is_searched_not_an_error(api_client: Any) -> None:
    indexed(title="Quotes & ampersands")
    for query in ["'", '"', "&|!:*()", "-", "or", "ampersand's & quotes"]:
        assert api_client.get("/api/search", {"q": query}).status_code == 200


def test_the_match_is_served_by_the_gin_index() -> None:
    indexed(title="Harbour lights")
    queryset = VideoSearchDocument.objects.filter(
        document=search.SearchQuery("harbour", search_type="websearch", config="english")
    )
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        plan = queryset.explain()
        cursor.execute("RESET enable_seqscan")
    assert "videos_search_doc_gin" in plan


def test_without_full_text_search_every_word_must_appear_ranked_by_where(
    api_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The embedded SQLite default: a case-insensitive substring match."""
    monkeypatch.setattr(search, "full_text_available", lambda alias=None: False)
    in_description = VideoFactory(
        status="ready", title="A day out", tags=[], description="Seals on the beach"
    )
    in_tags = VideoFactory(status="ready", title="Coast", tags=["seals", "beach"], description="")
    in_title = VideoFactory(status="ready", title="Beach SEALS", tags=[], description="")
    VideoFactory(status="ready", title="Seals only", tags=[], description="")
    VideoFactory(status="ready", title="Seals beach", privacy=Video.Privacy.PRIVATE)
    assert titles(api_client.get("/api/search?q=seals beach")) == [
        in_title.title,
        in_tags.title,
        in_description.title,
    ]


def test_the_sweep_indexes_videos_whose_indexing_job_was_lost(api_client: Any) -> None:
    from datetime import timedelta

    from django.utils import timezone

    current = indexed(title="Glacier current")
    lost = VideoFactory(title="Glacier lost", status=Video.Status.READY)  # its job never ran
    renamed = indexed(title="Old name")
    hour_ago = timezone.now() - timedelta(hours=1)
    VideoSearchDocument.objects.filter(pk=renamed.pk).update(indexed_at=hour_ago - timedelta(minutes=5))
    Video.objects.filter(pk=renamed.pk).update(title="Glacier renamed", updated_at=hour_ago)
    Video.objects.filter(pk__in=[current.pk, lost.pk]).update(updated_at=hour_ago)
    in_flight = VideoFactory(title="Glacier just now", status=Video.Status.READY)  # its job may be queued
    assert titles(api_client.get("/api/search", {"q": "glacier"})) == ["Glacier current"]

    assert search.search_index_sweep(settle=timedelta(minutes=10)) == 2

    found = titles(api_client.get("/api/search", {"q": "glacier"}))
    assert sorted(found) == ["Glacier current", "Glacier lost", "Glacier renamed"]
    assert not VideoSearchDocument.objects.filter(pk=in_flight.pk).exists()
    assert search.search_index_sweep(settle=timedelta(minutes=10)) == 0  # nothing left to do
