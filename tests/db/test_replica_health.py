"""A replica that is down or lagging never turns into an error: reads fall back to the primary,
/ready and the health page say why, and the replica returns to rotation when it recovers."""

from __future__ import annotations

import re

import pytest
from django.db import connections
from django.test.utils import override_settings
from prometheus_client import REGISTRY

from tests.conftest import login_client
from tests.db.support import REPLICATED, queries_by_alias, replay_paused, standby_stopped, wait_for_replay
from tests.factories import UserFactory, VideoFactory
from tests.support.processes import wait_until
from videoplatform.db.lsn import commit_position
from videoplatform.db.replicas import monitor
from videoplatform.entry.health import DetailedHealthView, run_checks
from videos.models import Video

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True, databases=REPLICATED)]


def _fallbacks() -> float:
    return REGISTRY.get_sample_value("db_replica_fallbacks_total", {"alias": "replica1"}) or 0.0


def test_a_lagging_replica_leaves_the_rotation_and_comes_back(data_layer, api_client):
    video = VideoFactory(title="Before")
    wait_for_replay(data_layer)

    with override_settings(DB_REPLICA_MAX_LAG=1, DB_REPLICA_CHECK_INTERVAL=0):
        assert monitor.check("replica1").in_rotation
        with replay_paused(data_layer):
            # WAL the standby receives but does not replay: its lag grows past the bound.
            Video.objects.filter(pk=video.pk).update(title="After")
            assert wait_until(lambda: not monitor.check("replica1").in_rotation, timeout=20)
            assert "lagging" in monitor.state("replica1").reason

            with queries_by_alias() as stats:
                response = api_client.get(f"/api/videos/{video.pk}")
            assert response.status_code == 200
            assert response.json()["title"] == "After"
            assert stats.by_alias["replica1"] == 0

            ready = api_client.get("/ready")
            assert ready.status_code == 200  # a replica never makes a pod unready
            assert ready.json()["checks"]["replica1"].startswith("down:")
            assert "lagging" in ready.json()["checks"]["replica1"]

        assert wait_until(lambda: monitor.check("replica1").in_rotation, timeout=30)
        with queries_by_alias() as stats:
            response = api_client.get(f"/api/videos/{video.pk}")
        assert response.json()["title"] == "After"
        assert stats.reads_by_alias["replica1"] >= 1
        assert stats.by_alias["default"] == 0
        assert api_client.get("/ready").json()["checks"]["replica1"] == "ok"


def test_a_stopped_replica_is_skipped_and_rejoins_when_it_is_back(data_layer, api_client):
    video = VideoFactory(title="Still served")
    wait_for_replay(data_layer)
    with queries_by_alias() as stats:
        assert api_client.get(f"/api/videos/{video.pk}").status_code == 200
    assert stats.reads_by_alias["replica1"] >= 1  # a live connection to the replica, in rotation
    fallbacks = _fallbacks()

    with standby_stopped(data_layer):
        # The cached state still says "in rotation": the read tries the replica, cannot reach
        # it, and runs on the primary; the replica leaves the rotation.
        with queries_by_alias() as stats:
            response = api_client.get(f"/api/videos/{video.pk}")
        assert response.status_code == 200
        assert response.json()["title"] == "Still served"
        assert stats.reads_by_alias["default"] >= 1
        assert _fallbacks() == fallbacks + 1
        state = monitor.state("replica1")
        assert state is not None and not state.in_rotation
        assert "unreachable" in state.reason

        # Later reads go straight to the primary (no new attempt until the next check).
        with queries_by_alias() as stats:
            assert api_client.get(f"/api/videos/{video.pk}").status_code == 200
        assert stats.by_alias["replica1"] == 0
        assert _fallbacks() == fallbacks + 1

        ready = api_client.get("/ready")
        assert ready.status_code == 200
        assert "unreachable" in ready.json()["checks"]["replica1"]

    assert wait_until(lambda: monitor.check("replica1").in_rotation, timeout=60)
    with queries_by_alias() as stats:
        assert api_client.get(f"/api/videos/{video.pk}").status_code == 200
    assert stats.reads_by_alias["replica1"] >= 1


def test_a_connection_lost_between_queries_falls_back_to_the_primary(data_layer):
    video = VideoFactory()
    wait_for_replay(data_layer)
    assert Video.objects.get(pk=video.pk)._state.db == "replica1"
    replica = connections["replica1"]
    backend_pid = replica.connection.info.backend_pid
    with data_layer.standby() as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (backend_pid,))
    assert wait_until(
        lambda: not data_layer.standby_sql(f"SELECT count(*) FROM pg_stat_activity WHERE pid = {backend_pid}")
    )
    # No ping before the next statement: the statement itself meets the dead connection.
    replica.health_check_done = True

    with queries_by_alias() as stats:
        assert Video.objects.get(pk=video.pk).pk == video.pk
    # Sent to the replica, failed there, answered by the primary.
    assert dict(stats.reads_by_alias) == {"replica1": 1, "default": 1}
    assert not monitor.state("replica1").in_rotation


def test_a_replica_is_measured_at_most_once_per_interval(data_layer):
    VideoFactory()
    before = monitor.checks
    for _ in range(5):
        assert Video.objects.all().db == "replica1"
    assert monitor.checks == before + 1  # DB_REPLICA_CHECK_INTERVAL is an hour in these tests

    with override_settings(DB_REPLICA_CHECK_INTERVAL=0):
        for _ in range(3):
            Video.objects.all().db
    assert monitor.checks == before + 4


@pytest.mark.django_db(transaction=True, databases="__all__")  # the page checks the shards too
def test_health_page_and_metrics_show_replica_state(data_layer, client):
    VideoFactory()
    wait_for_replay(data_layer)
    api = login_client(UserFactory())
    assert api.get("/api/videos").status_code == 200
    primary_before = commit_position()
    wait_for_replay(data_layer)

    results = run_checks(DetailedHealthView().get_checks())
    shown = {repr(result.check): result.error for result in results}
    replica = [name for name in shown if name.startswith("Replica(replica1")]
    assert len(replica) == 1
    assert "in rotation, lag" in replica[0]
    # Its replay position, as PostgreSQL spells it, at least where the primary was before the check.
    replayed = re.search(r"replayed ([0-9A-F]+)/([0-9A-F]+)", replica[0])
    assert replayed is not None
    assert (int(replayed.group(1), 16) << 32) + int(replayed.group(2), 16) >= primary_before
    assert shown[replica[0]] is None
    assert shown["Database(alias='shard3')"] is None

    metrics = client.get("/metrics").content.decode()
    lag = re.search(r'^db_replica_lag_seconds\{alias="replica1"\} (\S+)$', metrics, re.M)
    assert lag is not None and float(lag.group(1)) >= 0
    assert re.search(r'^db_replica_in_rotation\{alias="replica1"\} 1\.0$', metrics, re.M)
    position = re.search(r'^db_replica_replay_lsn_bytes\{alias="replica1"\} (\S+)$', metrics, re.M)
    assert position is not None and float(position.group(1)) >= primary_before
    assert re.search(r'^db_reads_routed_total\{alias="replica1",reason="replica"\} [1-9]', metrics, re.M)
    assert re.search(r'^db_queries_total\{alias="replica1",kind="read"\} [1-9]', metrics, re.M)
    assert re.search(r'^http_request_db_queries_count\{method="GET",view="api/videos"\} [1-9]', metrics, re.M)
