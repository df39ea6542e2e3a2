"""Helpers for the data-layer tests: the standby, PgBouncer, counting queries per alias."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from tests.support.processes import PG_BIN, wait_until
from videoplatform.db import instrumentation

REPO_ROOT = Path(__file__).resolve().parents[2]
REPLICA_PORT = int(os.environ.get("TEST_REPLICA_PORT", "5433"))
PGBOUNCER_PORT = int(os.environ.get("TEST_PGBOUNCER_PORT", "6432"))
SHARD_COUNT = 4
REPLICA = "replica1"
DIRECT = "direct"
# What most tests use: the primary (flushed after each test), the standby and the primary
# without the pooler (both test mirrors: never flushed). Shards only where a test needs them.
REPLICATED = ["default", REPLICA, DIRECT]
SHARDS = [f"shard{index}" for index in range(SHARD_COUNT)]
STANDBY_DATA = "/var/lib/postgresql/videoplatform-replica/data"
# The standby that scripts/services.sh runs.
PG_CTL = str(PG_BIN / "pg_ctl")
REPLICA_ENGINE = "videoplatform.db.replica_backend"


def connect(settings_dict: dict[str, Any], *, port: int | None = None, dbname: str | None = None) -> Any:
    """A plain autocommit psycopg connection (outside Django) to one of the servers."""
    return psycopg.connect(
        host=settings_dict["HOST"] or "127.0.0.1",
        port=port or int(settings_dict["PORT"] or 5432),
        user=settings_dict["USER"],
        password=settings_dict["PASSWORD"] or None,
        dbname=dbname or settings_dict["NAME"],
        autocommit=True,
        connect_timeout=3,
        prepare_threshold=None,
    )


@dataclass
class DataLayer:
    test_database: str
    primary: dict[str, Any]

    def standby(self) -> Any:
        return connect(self.primary, port=REPLICA_PORT)

    def standby_sql(self, sql: str) -> Any:
        with self.standby() as conn:
            row = conn.execute(sql).fetchone()
            return row[0] if row else None

    def replica_sees(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        with self.standby() as conn:
            row = conn.execute(sql, params).fetchone()
            return row[0] if row else None


def visible_on_standby(settings_dict: dict[str, Any]) -> bool:
    try:
        with connect(settings_dict, port=REPLICA_PORT) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.OperationalError:
        return False


@contextmanager
def queries_by_alias() -> Iterator[instrumentation.RequestDbStats]:
    """Counts the SQL statements run inside the block, per alias (reads and writes)."""
    stats, token = instrumentation.start_stats()
    try:
        yield stats
    finally:
        instrumentation.stop_stats(token)


# --- PgBouncer ---------------------------------------------------------------------------


def pgbouncer_admin(layer: DataLayer) -> Any:
    """PgBouncer's admin console (simple query protocol only: client-side cursors)."""
    return psycopg.connect(
        host=layer.primary["HOST"] or "127.0.0.1",
        port=PGBOUNCER_PORT,
        user=layer.primary["USER"],
        password=layer.primary["PASSWORD"] or None,
        dbname="pgbouncer",
        autocommit=True,
        connect_timeout=3,
        cursor_factory=psycopg.ClientCursor,
    )


def pgbouncer_show(layer: DataLayer, what: str, database: str) -> dict[str, Any]:
    """One database's row of ``SHOW STATS`` / ``SHOW POOLS`` ({} when PgBouncer has none)."""
    with pgbouncer_admin(layer) as admin:
        cursor = admin.execute(f"SHOW {what}")
        columns = [column.name for column in cursor.description]
        for row in cursor.fetchall():
            values = dict(zip(columns, row, strict=True))
            if values["database"] == database:
                return values
    return {}


def release_pgbouncer_servers(layer: DataLayer) -> None:
    """Closes PgBouncer's server connections to the test database (so that it can be dropped)."""
    with pgbouncer_admin(layer) as admin:
        admin.execute(f"RECONNECT {layer.test_database}")

    def released() -> bool:
        pool = pgbouncer_show(layer, "POOLS", layer.test_database)
        return not any(pool.get(column) for column in ("sv_active", "sv_idle", "sv_used", "sv_tested"))

    assert wait_until(released, timeout=30), "PgBouncer kept server connections to the test database"


# --- the standby: pause replay, stop and start ------------------------------------------


@contextmanager
def replay_paused(layer: DataLayer) -> Iterator[None]:
    """WAL replay on the standby is paused inside the block (and always resumed after it)."""
    with layer.standby() as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
    try:
        assert wait_until(lambda: layer.standby_sql("SELECT pg_get_wal_replay_pause_state()") == "paused")
        yield
    finally:
        with layer.standby() as conn:
            conn.execute("SELECT pg_wal_replay_resume()")


def wait_for_replay(layer: DataLayer, timeout: float = 30) -> None:
    """Waits until the standby has replayed everything the primary had written when called."""
    with connect(layer.primary) as conn:
        target = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
    assert wait_until(
        lambda: layer.standby_sql(f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn"), timeout=timeout
    ), "the standby did not catch up"


def stop_standby() -> None:
    subprocess.run(
        ["runuser", "-u", "postgres", "--", PG_CTL, "-D", STANDBY_DATA, "-m", "fast", "-w", "stop"],
        check=True,
        capture_output=True,
        timeout=60,
        cwd="/",
    )


def start_standby() -> None:
    subprocess.run(
        ["bash", "scripts/services.sh", "up"], cwd=REPO_ROOT, check=True, capture_output=True, timeout=300
    )


@contextmanager
def standby_stopped(layer: DataLayer) -> Iterator[None]:
    stop_standby()
    try:
        yield
    finally:
        start_standby()
        assert wait_until(lambda: visible_on_standby(layer.primary), timeout=60)
