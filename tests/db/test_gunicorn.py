"""A real pod: gunicorn through PgBouncer with the streaming replica, next to this process.

A write made through this process pins its client to the write's WAL position in Redis; the
gunicorn pod, another process, then serves that client's reads from the primary while the paused
standby is behind that position (probing it once), and everyone else's from the replica. Its
/metrics and /ready report it.
"""

from __future__ import annotations

import json
import re

import pytest
from django.conf import settings
from django.db import connections

from tests.conftest import login_client
from tests.db.support import (
    PGBOUNCER_PORT,
    REPLICA_PORT,
    REPLICATED,
    release_pgbouncer_servers,
    replay_paused,
    wait_for_replay,
)
from tests.factories import UserFactory, VideoFactory
from tests.support.processes import base_env, gunicorn, http_get

pytestmark = [
    pytest.mark.services,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, databases=REPLICATED),
]


def _metric(text: str, name: str, labels: str) -> float:
    match = re.search(rf"^{name}\{{{re.escape(labels)}\}} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def test_a_pod_serves_the_pinned_client_from_the_primary(data_layer):
    if not settings.REDIS_URL:
        pytest.skip("pins are shared between processes through Redis: set REDIS_URL")
    primary = connections["default"].settings_dict
    server = f"postgres://{primary['USER']}:{primary['PASSWORD']}@{primary['HOST']}"
    database = data_layer.test_database
    env = base_env(
        DJANGO_SETTINGS_MODULE="settings.test",
        DATABASE_URL=f"{server}:{PGBOUNCER_PORT}/{database}",
        DATABASE_POOLED="true",
        DATABASE_DIRECT_URL=f"{server}:{primary['PORT']}/{database}",
        DATABASE_REPLICA_URLS=f"{server}:{REPLICA_PORT}/{database}",
        REDIS_URL=settings.REDIS_URL,
        CACHE_TIERS_ENABLED="false",
    )
    owner = UserFactory()
    video = VideoFactory(owner=owner, title="Before")
    writer = login_client(owner)
    token = writer._credentials["HTTP_AUTHORIZATION"]
    wait_for_replay(data_layer)

    try:
        with gunicorn(env, workers=2) as url:
            assert http_get(f"{url}/api/videos/{video.pk}")[0] == 200
            with replay_paused(data_layer):
                response = writer.patch(f"/api/videos/{video.pk}", {"title": "After"}, format="json")
                assert response.status_code == 200

                mine = [
                    http_get(f"{url}/api/videos/{video.pk}", headers={"Authorization": token})
                    for _ in range(4)
                ]
                theirs = [http_get(f"{url}/api/videos/{video.pk}") for _ in range(4)]
                ready = http_get(f"{url}/ready")
            metrics = http_get(f"{url}/metrics")[1].decode()
    finally:
        release_pgbouncer_servers(data_layer)

    # Both workers (whichever served which request) saw the pin another process set.
    assert {status for status, _ in mine} == {200}
    assert {json.loads(body)["title"] for _, body in mine} == {"After"}
    assert {json.loads(body)["title"] for _, body in theirs} == {"Before"}
    assert ready[0] == 200
    assert json.loads(ready[1])["checks"]["replica1"] == "ok"

    assert _metric(metrics, "db_reads_routed_total", 'alias="default",reason="replica_behind"') >= 4
    assert _metric(metrics, "db_replica_lsn_probes_total", 'alias="replica1",result="behind"') >= 1
    assert _metric(metrics, "db_reads_routed_total", 'alias="replica1",reason="replica"') >= 4
    assert _metric(metrics, "db_queries_total", 'alias="replica1",kind="read"') >= 4
    assert _metric(metrics, "db_replica_in_rotation", 'alias="replica1"') == 1.0
    assert re.search(r'^db_replica_lag_seconds\{alias="replica1"\} \d', metrics, re.M)
    assert (
        _metric(metrics, "http_request_db_queries_count", 'method="GET",view="api/videos/<str:video_id>"')
        >= 9
    )
