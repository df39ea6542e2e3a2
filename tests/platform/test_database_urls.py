"""Database URLs that list several servers (libpq's multi-host form) reach libpq as they are, so
that the app follows a promoted standby without a restart (docs/reliability.md, "Primary failover")."""

from __future__ import annotations

import pytest
from django.db import connections
from django.db.backends.postgresql.base import DatabaseWrapper

from settings.base import database_config, env_urls


def libpq_params(url: str) -> dict[str, object]:
    # Django's defaults filled in, as for a configured alias.
    config = connections.configure_settings({"default": {}, "probe": database_config(url)})["probe"]
    return DatabaseWrapper(config, alias="probe").get_connection_params()


def test_a_url_listing_two_servers_asks_libpq_for_the_writable_one() -> None:
    params = libpq_params(
        "postgres://app:secret@db-a:5432,db-b:6543/videoplatform?target_session_attrs=read-write"
    )
    assert params["host"] == "db-a,db-b"
    assert params["port"] == "5432,6543"
    assert params["target_session_attrs"] == "read-write"
    assert (params["user"], params["password"], params["dbname"]) == ("app", "secret", "videoplatform")


def test_servers_without_ports_use_the_default_one() -> None:
    params = libpq_params("postgres://app@db-a,db-b:5433/videoplatform")
    assert (params["host"], params["port"]) == ("db-a,db-b", "5432,5433")
    params = libpq_params("postgres://app@db-a,db-b/videoplatform")
    assert params["host"] == "db-a,db-b" and "port" not in params


def test_one_server_is_parsed_as_before() -> None:
    params = libpq_params("postgres://app:secret@db-a:5432/videoplatform")
    assert (params["host"], params["port"]) == ("db-a", 5432)


def test_replica_urls_keep_their_own_commas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "DATABASE_REPLICA_URLS",
        "postgres://app@db-a:5432,db-b:5432/videoplatform?target_session_attrs=standby,postgres://app@db-c/videoplatform",
    )
    assert env_urls("DATABASE_REPLICA_URLS") == [
        "postgres://app@db-a:5432,db-b:5432/videoplatform?target_session_attrs=standby",
        "postgres://app@db-c/videoplatform",
    ]
