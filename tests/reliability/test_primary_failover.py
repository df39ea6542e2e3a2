"""The primary PostgreSQL killed for good (SIGKILL, not a clean stop) under a steady mixed load,
its synchronous standby promoted: the running app finds the new primary by itself (a multi-host
``DATABASE_URL`` with ``target_session_attrs=read-write``), every write it acknowledged is on the
new primary, and the old primary, restarted by anyone, only ever comes back read-only (fenced),
until it is rewound into a standby of the new one. The benchmark with figures, sync against
async, is ``python -m bench.faults.pg_failover``."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from bench.faults.pg_failover import DATABASE, PgPair, app_env, app_server, ports_from_env
from bench.faults.stack import Gunicorn
from bench.loadgen import LoadGenerator, seed_users, seed_videos
from tests.reliability.conftest import CLIENT_TIMEOUT, print_report, ready
from tests.security.conftest import live_database_url
from tests.support.processes import ROOT, wait_until

# django_db: so that the test database exists (and is migrated) to be copied.
pytestmark = [pytest.mark.slow, pytest.mark.django_db]


@pytest.fixture
def work() -> Iterator[pathlib.Path]:
    folder = pathlib.Path(tempfile.mkdtemp(prefix="vp-failover-"))
    shutil.chown(folder, "postgres", "postgres")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def pair(django_db_setup: Any, work: pathlib.Path) -> Iterator[PgPair]:
    # PG_FAILOVER_PORTS=a,b pins the pair's ports (free ones otherwise).
    first, second = ports_from_env("PG_FAILOVER_PORTS", 2)
    servers = PgPair(work / "pg", (first, second), synchronous=True)
    try:
        servers.start()
        servers.create_database(DATABASE, template_url=live_database_url())
        servers.wait_streaming(sync=True)
        yield servers
    finally:
        servers.stop()


@pytest.fixture
def server(pair: PgPair, work: pathlib.Path) -> Iterator[Gunicorn]:
    port = int(os.environ.get("PG_FAILOVER_APP_PORT", "0")) or None
    with app_server(app_env(pair, work), port=port) as gunicorn:
        yield gunicorn


def create_video(url: str, token: str, title: str) -> httpx.Response:
    return httpx.post(
        f"{url}/api/videos",
        json={"title": title},
        headers={"Authorization": f"Bearer {token}"},
        timeout=CLIENT_TIMEOUT,
    )


def db_failover(pair: PgPair, work: pathlib.Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The operator's command, configured like the app (both servers in DATABASE_URL)."""
    return subprocess.run(
        [sys.executable, "manage.py", "db_failover", *args],
        cwd=ROOT,
        env=app_env(pair, work),
        capture_output=True,
        text=True,
        timeout=60,
    )


def present(port: int, ids: list[str]) -> int:
    with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname=DATABASE) as conn:
        row = conn.execute("SELECT count(*) FROM videos_video WHERE id = ANY(%s)", (ids,)).fetchone()
    return int(row[0]) if row else 0


def test_primary_killed_standby_promoted_app_follows(
    pair: PgPair, server: Gunicorn, work: pathlib.Path
) -> None:
    assert server.process is not None
    # The operator's promotion is refused while the primary still answers (two primaries).
    refused = db_failover(pair, work, "promote", f"127.0.0.1:{pair.standby.port}")
    assert refused.returncode == 1 and "still answers as a primary" in refused.stderr
    master_pid = server.process.pid
    users = seed_users(server.url, count=3, prefix="failover")
    videos = seed_videos(server.url, users, per_user=2)
    load = LoadGenerator(server.url, users=users, video_ids=videos, threads=4, timeout=CLIENT_TIMEOUT)
    load.start(duration=180)
    time.sleep(3)
    old, new = pair.primary, pair.standby
    fault_at = load.now()
    # Fenced, not rejoined yet: a standby.signal stops it from ever starting as a primary.
    pair.failover(rejoin=False)
    promoted_at = load.now()
    assert pair.primary is new and not new.in_recovery()

    # Without a restart of the app: writes are answered again, on the promoted standby.
    token = users[0].token
    assert wait_until(lambda: create_video(server.url, token, "after").status_code == 201, timeout=30)
    recovered_at = load.now()

    # Someone restarts the old primary's server as it was: it comes back read-only.
    old.start()
    assert old.in_recovery()
    with (
        psycopg.connect(host="127.0.0.1", port=old.port, user="postgres", dbname=DATABASE) as conn,
        pytest.raises(psycopg.errors.ReadOnlySqlTransaction),
    ):
        conn.execute("INSERT INTO django_migrations (app, name, applied) VALUES ('x', 'y', now())")

    # ...and pg_rewind makes it the new primary's standby, streaming synchronously.
    pair.rejoin()
    status = db_failover(pair, work, "status")
    assert status.returncode == 0, status.stderr
    assert f"127.0.0.1:{new.port}  primary" in status.stdout
    assert "streaming, sync" in status.stdout
    assert f"127.0.0.1:{old.port}  standby" in status.stdout
    time.sleep(2)
    report = load.stop()
    print_report("primary failover (sync)", report, fault_at, promoted_at)

    # The same gunicorn master served throughout.
    assert server.process.pid == master_pid and server.process.poll() is None
    assert ready(server.url)[0] == 200
    acknowledged = report.acknowledged_writes
    assert acknowledged
    # Every write the app acknowledged is on the new primary, and on its new standby too.
    assert present(new.port, acknowledged) == len(acknowledged)
    assert wait_until(lambda: present(old.port, acknowledged) == len(acknowledged), timeout=15)
    # Failures, if the load met the outage at all, were the API's clean 503s, and stopped.
    assert {s.status for s in report.failures} <= {503}, report.statuses()
    assert not report.unclean_failures
    assert report.between(recovered_at + 1, 1e9).failed == 0
    assert not [s for s in report.failures if s.at + s.latency < fault_at]
