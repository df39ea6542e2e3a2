"""The data layer against real servers: the streaming standby, PgBouncer, four shard databases.

The rest of the suite runs with no replica and one shard (the primary). This package adds, for
its own tests only, the aliases the data layer routes to:

- ``replica1``: the hot standby of the primary (127.0.0.1:5433), on the *test* database. A
  database created on the primary appears on the standby by itself, so the alias points at the
  test database's name there (not a MIRROR of ``default``, which would be the primary itself).
  It is still marked as a test mirror so that flushes skip it (a standby is read-only).
- ``direct``: the primary itself, as DATABASE_DIRECT_URL would configure it.
- ``shard0``…``shard3``: four databases on the primary, ``<test database>_shard<i>``, migrated
  with the router's rules (only the sharded models).

Everything is removed again when the package's tests are done.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connections
from django.test.utils import override_settings

from tests.db.support import (
    DIRECT,
    REPLICA,
    REPLICA_ENGINE,
    REPLICA_PORT,
    SHARD_COUNT,
    SHARDS,
    DataLayer,
    connect,
    visible_on_standby,
)
from tests.support.processes import wait_until
from videoplatform.db.aliases import add_database, remove_database
from videoplatform.db.replicas import monitor


@pytest.fixture(scope="package")
def data_layer(django_db_setup: Any, django_db_blocker: Any) -> Iterator[DataLayer]:
    primary = copy.deepcopy(connections["default"].settings_dict)
    if primary["ENGINE"] != "django.db.backends.postgresql":
        pytest.fail("tests/db need PostgreSQL: set DATABASE_URL")
    test_database = primary["NAME"]
    if not wait_until(lambda: visible_on_standby(primary), timeout=30):
        pytest.fail(f"{test_database} did not appear on the standby at port {REPLICA_PORT}")
    shard_names = [f"{test_database}_shard{index}" for index in range(SHARD_COUNT)]
    base = {key: primary[key] for key in ("ENGINE", "HOST", "PORT", "USER", "PASSWORD", "OPTIONS")}
    with django_db_blocker.unblock():
        with connect(primary, dbname="postgres") as conn:
            for name in shard_names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{name}"')
        for alias, name in zip(SHARDS, shard_names, strict=True):
            add_database(alias, {**copy.deepcopy(base), "NAME": name, "CONN_MAX_AGE": 0})
        # The primary without the pooler (what DATABASE_DIRECT_URL configures).
        add_database(
            DIRECT,
            {**copy.deepcopy(base), "NAME": test_database, "CONN_MAX_AGE": 0, "TEST": {"MIRROR": "default"}},
        )
        add_database(
            REPLICA,
            {
                **copy.deepcopy(base),
                "ENGINE": REPLICA_ENGINE,
                "NAME": test_database,
                "PORT": str(REPLICA_PORT),
                "CONN_MAX_AGE": 60,
                "CONN_HEALTH_CHECKS": True,
                "TEST": {"MIRROR": "default"},
            },
        )
        overrides = override_settings(
            REPLICA_DATABASES=[REPLICA],
            SHARD_DATABASES=SHARDS,
            SHARD_COUNT=SHARD_COUNT,
            # Tests decide when a replica is re-measured (monitor.forget / monitor.check).
            DB_REPLICA_CHECK_INTERVAL=3600,
            # These tests follow the SQL: cached paths would answer without any.
            CACHE_TIERS_ENABLED=False,
        )
        overrides.enable()
        try:
            for alias in SHARDS:
                call_command("migrate", database=alias, verbosity=0)
            yield DataLayer(test_database=test_database, primary=primary)
        finally:
            overrides.disable()
            for alias in [DIRECT, REPLICA, *SHARDS]:
                remove_database(alias)
            monitor.forget()
            with connect(primary, dbname="postgres") as conn:
                for name in shard_names:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(autouse=True)
def _fresh_replica_state(data_layer: DataLayer) -> Iterator[None]:
    """Every test starts with no cached replica state (the first read measures it)."""
    monitor.forget()
    yield
    monitor.forget()
