"""Reads go to the streaming replica, writes and transactional reads to the primary."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.test.utils import override_settings

from tests.conftest import login_client
from tests.db.support import REPLICATED, queries_by_alias, wait_for_replay
from tests.factories import UserFactory, VideoFactory
from videoplatform.db import use_primary
from videoplatform.db.router import DataLayerRouter
from videoplatform.db.routing import routing_context
from videos.models import Video

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True, databases=REPLICATED)]


def test_a_row_written_on_the_primary_is_read_back_through_the_replica(data_layer):
    video = VideoFactory(title="Written on the primary")
    wait_for_replay(data_layer)

    with queries_by_alias() as stats:
        fetched = Video.objects.get(pk=video.pk)

    assert fetched.title == "Written on the primary"
    assert fetched._state.db == "replica1"
    assert dict(stats.reads_by_alias) == {"replica1": 1}


def test_anonymous_api_reads_are_served_by_the_replica(data_layer, api_client):
    video = VideoFactory(title="Public")
    wait_for_replay(data_layer)

    with queries_by_alias() as stats:
        response = api_client.get(f"/api/videos/{video.pk}")

    assert response.status_code == 200
    assert response.json()["title"] == "Public"
    assert stats.reads_by_alias["replica1"] >= 1
    assert stats.by_alias["default"] == 0


def test_a_write_request_reads_and_writes_only_the_primary(data_layer):
    owner = UserFactory()
    video = VideoFactory(owner=owner, title="Old")
    client = login_client(owner)
    wait_for_replay(data_layer)

    with queries_by_alias() as stats:
        response = client.patch(f"/api/videos/{video.pk}", {"title": "New"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["title"] == "New"
    assert stats.by_alias["default"] >= 2  # the read of the video and its update
    assert stats.by_alias["replica1"] == 0


def test_a_created_video_is_read_back_in_the_same_request(data_layer):
    owner = UserFactory()
    client = login_client(owner)

    with queries_by_alias() as stats:
        response = client.post("/api/videos", {"title": "Fresh"}, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["title"] == "Fresh"
    assert stats.by_alias["replica1"] == 0


def test_reads_inside_a_transaction_use_the_primary(data_layer):
    video = VideoFactory()
    wait_for_replay(data_layer)

    with transaction.atomic():
        assert Video.objects.get(pk=video.pk)._state.db == "default"
    assert Video.objects.get(pk=video.pk)._state.db == "replica1"


def test_use_primary_as_a_block_and_as_a_decorator(data_layer):
    video = VideoFactory()
    wait_for_replay(data_layer)

    @use_primary
    def read_bare() -> str:
        return Video.objects.get(pk=video.pk)._state.db

    @use_primary()
    def read_called() -> str:
        return Video.objects.get(pk=video.pk)._state.db

    with use_primary():
        assert Video.objects.get(pk=video.pk)._state.db == "default"
        with use_primary():
            assert Video.objects.get(pk=video.pk)._state.db == "default"
        assert Video.objects.get(pk=video.pk)._state.db == "default"
    assert read_bare() == "default"
    assert read_called() == "default"
    assert Video.objects.get(pk=video.pk)._state.db == "replica1"


def test_after_a_write_the_same_context_reads_the_primary(data_layer):
    video = VideoFactory(title="Before")
    wait_for_replay(data_layer)

    with routing_context():
        assert Video.objects.get(pk=video.pk)._state.db == "replica1"
        Video.objects.filter(pk=video.pk).update(title="After")
        fetched = Video.objects.get(pk=video.pk)
    assert (fetched._state.db, fetched.title) == ("default", "After")


def test_one_replica_serves_a_whole_request(data_layer):
    VideoFactory()
    wait_for_replay(data_layer)

    with routing_context() as context:
        aliases = {Video.objects.all().db for _ in range(5)}
    assert aliases == {"replica1"}
    assert context.replica == "replica1"


def test_without_replicas_every_read_goes_to_the_primary(data_layer):
    video = VideoFactory()
    with override_settings(REPLICA_DATABASES=[]):
        assert Video.objects.get(pk=video.pk)._state.db == "default"


def test_migrations_go_where_the_models_live(data_layer):
    router = DataLayerRouter()
    assert router.allow_migrate("replica1", "videos", "video") is False
    assert router.allow_migrate("replica1", "streaming", "watchevent") is False
    assert router.allow_migrate("default", "videos", "video") is True
    assert router.allow_migrate("default", "videos") is True  # RunPython / RunSQL
    assert router.allow_migrate("shard2", "streaming", "watchevent") is True
    assert router.allow_migrate("shard2", "videos", "video") is False
    assert router.allow_migrate("shard2", "streaming") is False
    # With four shards the primary holds no watch history; with one, it is the shard.
    assert router.allow_migrate("default", "streaming", "watchevent") is False
    with override_settings(SHARD_DATABASES=["default"], SHARD_COUNT=1):
        assert router.allow_migrate("default", "streaming", "watchevent") is True


def test_statements_are_told_apart(data_layer):
    from psycopg import sql

    from videoplatform.db.instrumentation import statement_kind

    assert statement_kind('  SELECT "videos_video"."id" FROM "videos_video"') == "read"
    assert statement_kind("WITH recent AS (SELECT 1) SELECT * FROM recent") == "read"
    assert statement_kind("WITH gone AS (DELETE FROM t RETURNING id) SELECT count(*) FROM gone") == "write"
    assert statement_kind('UPDATE "videos_video" SET "title" = %s') == "write"
    assert statement_kind('INSERT INTO "videos_video" VALUES (%s)') == "write"
    assert statement_kind('SAVEPOINT "s1_x1"') == "other"
    assert statement_kind(sql.SQL("COPY t FROM STDIN")) == "other"


def test_system_checks_catch_bad_data_layer_settings(data_layer, settings):
    from videoplatform.db.checks import check_data_layer

    settings.DB_REPLICA_CHECK_INTERVAL = 5  # this package's tests use an hour
    settings.SHARDED_MODELS = {"streaming.nosuchmodel": "user_id"}
    assert [message.id for message in check_data_layer()] == ["videoplatform_db.E001"]
    settings.SHARDED_MODELS = {"streaming.watchevent": "owner"}
    assert [message.id for message in check_data_layer()] == ["videoplatform_db.E003"]
    settings.SHARDED_MODELS = {"streaming.watchevent": "user_id"}
    assert check_data_layer() == []
    settings.DB_READ_YOUR_WRITES_WINDOW = 15  # not longer than the lag a replica may have + a check
    assert [message.id for message in check_data_layer()] == ["videoplatform_db.W002"]


def test_writes_to_sharded_tables_need_no_read_your_writes(data_layer):
    """Sharded rows are read from their shard only (the primary itself in the one-database
    layout): writing them must not send the rest of the request to the primary, nor pin."""
    from videoplatform.db.instrumentation import writes_replicated_rows

    assert not writes_replicated_rows('INSERT INTO "streaming_watchevent" ("id", "user_id") VALUES (%s, %s)')
    assert not writes_replicated_rows('DELETE FROM "streaming_watchevent" WHERE "user_id" = %s')
    assert writes_replicated_rows('UPDATE "videos_video" SET "title" = %s')
    assert writes_replicated_rows("WITH gone AS (DELETE FROM streaming_watchevent) SELECT 1")  # unsure: yes
