"""Running through PgBouncer in transaction mode, and the unpooled ``direct`` alias.

The API tests here run with ``default`` pointed at PgBouncer, each statement in its own
transaction (so consecutive statements may run on different server connections), with the
settings DATABASE_POOLED applies.
"""

from __future__ import annotations

import copy

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connections
from django.test.utils import CaptureQueriesContext

from settings.base import REPLICA_ENGINE, database_config
from tests.db.support import (
    PGBOUNCER_PORT,
    REPLICATED,
    SHARDS,
    connect,
    pgbouncer_show,
    queries_by_alias,
    release_pgbouncer_servers,
)
from tests.factories import DEFAULT_PASSWORD, PlanFactory, UserFactory
from videoplatform.db import advisory_lock, locks, use_primary
from videoplatform.db.locks import lock_key
from videos.models import Video

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True, databases=REPLICATED)]


@pytest.fixture
def through_pgbouncer(data_layer):
    """``default`` goes through PgBouncer, configured as DATABASE_POOLED=true configures it."""
    connection = connections["default"]
    saved = copy.deepcopy(connection.settings_dict)
    connection.close()
    connection.settings_dict["PORT"] = str(PGBOUNCER_PORT)
    connection.settings_dict["DISABLE_SERVER_SIDE_CURSORS"] = True
    connection.settings_dict["OPTIONS"] = {**saved["OPTIONS"], "prepare_threshold": None}
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)
        release_pgbouncer_servers(data_layer)


def test_pooled_settings():
    pooled = database_config("postgres://app:secret@pgbouncer:6432/videoplatform", pooled=True)
    assert pooled["DISABLE_SERVER_SIDE_CURSORS"] is True
    assert pooled["OPTIONS"]["prepare_threshold"] is None
    assert pooled["CONN_HEALTH_CHECKS"] is True
    direct = database_config("postgres://app:secret@primary:5432/videoplatform")
    assert not direct.get("DISABLE_SERVER_SIDE_CURSORS")
    replica = database_config("postgres://app:secret@replica:5432/videoplatform", replica=True)
    assert replica["ENGINE"] == REPLICA_ENGINE


def test_the_api_works_through_pgbouncer(data_layer, through_pgbouncer, api_client):
    before = pgbouncer_show(data_layer, "STATS", data_layer.test_database).get("total_xact_count", 0)
    PlanFactory(code="basic")

    UserFactory(username="pooled")
    login = api_client.post(
        "/api/auth/login", {"username": "pooled", "password": DEFAULT_PASSWORD}, format="json"
    )
    assert login.status_code == 200, login.content
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {login.json()['token']}")
    user_id = login.json()["user"]["id"]

    created = [api_client.post("/api/videos", {"title": f"Clip {n}"}, format="json") for n in range(7)]
    assert {response.status_code for response in created} == {201}
    video_id = created[0].json()["id"]
    # Far more than psycopg's prepare threshold (5) of the same statements on one client
    # connection: with server-side prepared statements PgBouncer would hand them to servers
    # that never saw the PREPARE.
    for _ in range(8):
        assert api_client.get(f"/api/videos/{video_id}").status_code == 200
        assert api_client.get(f"/api/users/{user_id}/videos").json()["pagination"]["total"] == 7
    assert (
        api_client.patch(f"/api/videos/{video_id}", {"title": "Renamed"}, format="json").json()["title"]
        == "Renamed"
    )
    assert api_client.delete(f"/api/videos/{video_id}").status_code == 204
    assert api_client.get(f"/api/videos/{video_id}").status_code == 404
    assert api_client.get("/api/subscriptions/plans").status_code == 200
    assert api_client.get("/api/auth/me").json()["username"] == "pooled"

    after = pgbouncer_show(data_layer, "STATS", data_layer.test_database)["total_xact_count"]
    assert after - before >= 20  # the traffic really went through PgBouncer


def test_iterator_over_more_rows_than_a_chunk_through_pgbouncer(data_layer, through_pgbouncer):
    owner = UserFactory()
    Video.objects.bulk_create([Video(owner=owner, title=f"Row {n:03}") for n in range(250)])

    with CaptureQueriesContext(connections["default"]) as captured, use_primary():
        titles = [video.title for video in Video.objects.order_by("title").iterator(chunk_size=100)]

    assert titles == [f"Row {n:03}" for n in range(250)]
    # No server-side cursor: a DECLARE'd cursor would not survive into the next transaction.
    assert not any("DECLARE" in query["sql"].upper() for query in captured.captured_queries)


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_migrate_runs_on_the_direct_alias_and_every_shard(data_layer):
    with queries_by_alias() as stats:
        call_command("migrate", verbosity=0)
    assert stats.by_alias["direct"] > 0
    assert stats.by_alias["default"] == 0
    for alias in SHARDS:
        assert stats.by_alias[alias] > 0


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_migrate_with_an_explicit_database_runs_only_there(data_layer):
    with queries_by_alias() as stats:
        call_command("migrate", database="shard1", verbosity=0)
    assert set(stats.by_alias) == {"shard1"}


def test_advisory_locks_are_held_on_the_direct_connection(data_layer):
    key = lock_key("nightly-report")
    with connect(data_layer.primary) as other:
        with advisory_lock("nightly-report") as acquired:
            assert acquired
            assert other.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0] is False
            with advisory_lock("nightly-report", wait=False) as again:
                assert again is True  # session locks are re-entrant for their holder
        assert other.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0] is True
        with advisory_lock("nightly-report", wait=False) as taken_elsewhere:
            assert taken_elsewhere is False
        other.execute("SELECT pg_advisory_unlock(%s)", (key,))


def test_advisory_locks_refuse_the_pooler(data_layer, settings, monkeypatch):
    settings.DATABASE_POOLED = True
    monkeypatch.setattr(locks, "direct_alias", lambda: "default")
    with pytest.raises(ImproperlyConfigured, match="DATABASE_DIRECT_URL"), advisory_lock("anything"):
        pass
