"""The indexing job keeps the search documents in step with the catalogue: a video created,
edited or deleted through the API is found, found by its new words, or gone."""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from tests.conftest import login_client
from tests.factories import UserFactory, VideoFactory
from tests.jobs.support import celery_worker
from tests.support.processes import wait_until
from videos.models import Video, VideoSearchDocument

pytestmark = pytest.mark.django_db(transaction=True)


def found(client: Any, query: str) -> list[str]:
    return [item["id"] for item in client.get("/api/search", {"q": query}).json()["data"]]


def test_create_update_delete_through_the_api_reach_search(
    redis_broker: str, tmp_path: Path, api_client: Any
) -> None:
    owner = login_client(UserFactory())
    with celery_worker(redis_broker, tmp_path, queues="indexing,recommendation") as worker:
        created = owner.post(
            "/api/videos",
            {"title": "Alpine marmots", "tags": ["wildlife"], "description": "Filmed in spring."},
            format="json",
        )
        assert created.status_code == 201
        video_id = created.json()["id"]
        Video.objects.filter(pk=video_id).update(status=Video.Status.READY)  # as the pipeline would
        assert wait_until(lambda: found(api_client, "marmot") == [video_id], timeout=30), worker.tail()
        assert found(api_client, "wildlife") == [video_id]

        assert (
            owner.patch(f"/api/videos/{video_id}", {"title": "Alpine ibex"}, format="json").status_code == 200
        )
        assert wait_until(lambda: found(api_client, "ibex") == [video_id], timeout=30), worker.tail()
        assert found(api_client, "marmot") == []

        assert owner.delete(f"/api/videos/{video_id}").status_code == 204
        assert found(api_client, "ibex") == []
        assert not VideoSearchDocument.objects.filter(video_id=video_id).exists()


def test_rebuild_search_index_indexes_every_video_with_a_progress_bar(api_client: Any) -> None:
    videos = [VideoFactory(title=f"Canyon {index}", ready=True) for index in range(5)]
    assert found(api_client, "canyon") == []  # made without their jobs: not indexed
    output = StringIO()
    call_command("rebuild_search_index", "--batch-size", "2", stdout=output)
    text = output.getvalue()
    assert "5/5" in text and "Indexed 5 videos." in text
    assert sorted(found(api_client, "canyon")) == sorted(video.pk for video in videos)


def test_rebuild_search_index_refuses_a_bad_batch_size() -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("rebuild_search_index", "--batch-size", "0")
