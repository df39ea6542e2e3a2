"""The source's indexes (7.1) exist and the planner uses them for the feed and per-user lists."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import UserFactory, VideoFactory

pytestmark = [pytest.mark.django_db, pytest.mark.skipif("connection.vendor != 'postgresql'")]


def _index_definitions() -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'videos_video'")
        return dict(cursor.fetchall())


def _explain_page_query(client, path: str) -> str:
    """EXPLAIN the page query the API really runs for ``path``."""
    with CaptureQueriesContext(connection) as captured:
        assert client.get(path).status_code == 200
    page_sql = captured.captured_queries[-1]["sql"]
    assert "ORDER BY" in page_sql
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE videos_video")  # production tables have statistics; a fresh one does not
        cursor.execute("SET enable_seqscan = off")  # a test table is tiny; ask which index fits
        try:
            cursor.execute("EXPLAIN " + page_sql)
            return "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("SET enable_seqscan = on")


def test_indexes_are_declared_as_in_the_source():
    indexes = _index_definitions()
    assert "(owner_id, created_at DESC)" in indexes["videos_owner_created_idx"]
    feed = indexes["videos_public_feed_idx"]
    assert "(created_at DESC)" in feed
    assert "privacy" in feed and "'public'" in feed and "is_adult" in feed
    assert "USING brin (created_at)" in indexes["videos_created_brin"]


def test_feed_uses_the_partial_index(api_client):
    VideoFactory.create_batch(30, status="ready")
    assert "videos_public_feed_idx" in _explain_page_query(api_client, "/api/videos?limit=20")


def test_user_list_uses_the_user_index(api_client):
    owner = UserFactory()
    VideoFactory.create_batch(30, owner=owner, status="ready")
    # A realistic table: one user's videos are a small slice of the public catalogue, so the
    # per-user index is the selective one.
    VideoFactory.create_batch(300, owner=UserFactory(), status="ready")
    assert "videos_owner_created_idx" in _explain_page_query(api_client, f"/api/users/{owner.pk}/videos")
