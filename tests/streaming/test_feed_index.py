"""Showing only ready videos in the feed and in other users' lists keeps the source's indexes in use."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import UserFactory, VideoFactory
from videos.models import Video

pytestmark = [pytest.mark.django_db, pytest.mark.skipif("connection.vendor != 'postgresql'")]


def _explain_page_query(client, path: str) -> str:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
        assert response.status_code == 200 and response.json()["data"]
    page_sql = next(
        q["sql"]
        for q in reversed(captured.captured_queries)
        if '"videos_video"' in q["sql"] and "ORDER BY" in q["sql"] and "LIMIT" in q["sql"]
    )
    assert "status" in page_sql
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")  # a test table is tiny; ask which index fits
        try:
            cursor.execute("EXPLAIN " + page_sql)
            return "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("SET enable_seqscan = on")


def test_ready_only_feed_still_uses_the_partial_index(api_client):
    VideoFactory.create_batch(20, status=Video.Status.READY)
    VideoFactory.create_batch(10, status=Video.Status.PROCESSING)
    assert "videos_public_feed_idx" in _explain_page_query(api_client, "/api/videos?limit=20")


def test_ready_only_user_list_still_uses_the_user_index(api_client):
    owner = UserFactory()
    VideoFactory.create_batch(20, owner=owner, status=Video.Status.READY)
    VideoFactory.create_batch(10, owner=owner, status=Video.Status.FAILED)
    assert "videos_owner_created_idx" in _explain_page_query(api_client, f"/api/users/{owner.pk}/videos")
