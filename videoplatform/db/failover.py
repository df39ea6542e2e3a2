"""Primary failover for operators of self-run PostgreSQL: what each server is, and promoting a standby.

The app follows a promotion by itself when ``DATABASE_URL`` lists every server with
``target_session_attrs=read-write`` (libpq tries them in turn and keeps the one that takes
writes); ``manage.py db_failover`` is the operator's side (docs/operations.md, "Primary failover"):

- ``status`` connects to each server on its own and tells primary from standby, timeline, WAL
  positions and, on the primary, its standbys and whether they are synchronous;
- ``promote HOST:PORT`` promotes that standby with ``pg_promote()``, refusing while another server
  still answers as a primary (two primaries take diverging writes: fence the old one first).

Fencing the old primary (``pg_rewind`` into a standby of the new one, or keeping it down) happens
on its host: ``scripts/pg-failover.sh rejoin``. Under Patroni or CloudNativePG, or on a managed
service, none of this is run by hand (docs/reliability.md).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

from .aliases import direct_alias

STATUS_SQL = """
SELECT
    pg_is_in_recovery(),
    COALESCE(
        (SELECT received_tli FROM pg_stat_wal_receiver LIMIT 1),
        (SELECT timeline_id FROM pg_control_checkpoint())
    ),
    CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END,
    pg_last_wal_receive_lsn()::text,
    pg_last_wal_replay_lsn()::text,
    (SELECT sender_host || ':' || sender_port FROM pg_stat_wal_receiver LIMIT 1),
    current_setting('synchronous_standby_names'),
    current_setting('synchronous_commit')
"""
CAUGHT_UP_SQL = (
    "SELECT pg_last_wal_receive_lsn() IS NULL OR pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn()"
)
STANDBYS_SQL = """
SELECT application_name, client_addr::text, state, sync_state,
       pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)
FROM pg_stat_replication ORDER BY application_name
"""


@dataclass
class Server:
    """One PostgreSQL server as seen now (``error`` when it did not answer)."""

    host: str
    port: int
    error: str = ""
    in_recovery: bool = False
    timeline: int | None = None
    current_lsn: str | None = None
    receive_lsn: str | None = None
    replay_lsn: str | None = None
    upstream: str | None = None
    synchronous_standby_names: str = ""
    synchronous_commit: str = ""
    standbys: list[tuple[Any, ...]] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def role(self) -> str:
        if self.error:
            return "unreachable"
        return "standby" if self.in_recovery else "primary"

    def describe(self) -> str:
        if self.error:
            return f"{self.address}  unreachable ({self.error})"
        if not self.in_recovery:
            sync = self.synchronous_standby_names or "(none: asynchronous)"
            lines = [
                f"{self.address}  primary  timeline {self.timeline}  wal {self.current_lsn}  "
                f"synchronous_standby_names {sync}  synchronous_commit {self.synchronous_commit}"
            ]
            lines += [
                f"    standby {name or '?'} from {addr}: {state}, {sync_state}, replay behind {lag} bytes"
                for name, addr, state, sync_state, lag in self.standbys
            ] or ["    no standby connected"]
            return "\n".join(lines)
        upstream = self.upstream or "nothing (not streaming)"
        return (
            f"{self.address}  standby  timeline {self.timeline}  received {self.receive_lsn}  "
            f"replayed {self.replay_lsn}  streaming from {upstream}"
        )


def configured_hosts(alias: str | None = None) -> list[tuple[str, int]]:
    """The servers listed by an alias's HOST/PORT (``direct`` when set: PgBouncer is not a server)."""
    from django.conf import settings

    config = settings.DATABASES[alias or direct_alias()]
    hosts = [host.strip() for host in str(config.get("HOST") or "127.0.0.1").split(",")]
    ports = [port.strip() for port in str(config.get("PORT") or "5432").split(",")]
    if len(ports) == 1:
        ports = ports * len(hosts)
    return [(host, int(port)) for host, port in zip(hosts, ports, strict=True)]


def parse_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host:
        return text, 5432
    return host.strip("[]"), int(port)


def _connect(host: str, port: int, credentials: dict[str, Any], timeout: int) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=host,
        port=port,
        user=credentials.get("USER") or None,
        password=credentials.get("PASSWORD") or None,
        dbname=credentials.get("NAME") or "postgres",
        connect_timeout=timeout,
        autocommit=True,
        application_name="videoplatform-failover",
    )


def inspect(host: str, port: int, credentials: dict[str, Any], timeout: int = 3) -> Server:
    server = Server(host, port)
    try:
        with _connect(host, port, credentials, timeout) as conn:
            row = conn.execute(STATUS_SQL).fetchone()
            assert row is not None
            (
                server.in_recovery,
                server.timeline,
                server.current_lsn,
                server.receive_lsn,
                server.replay_lsn,
                server.upstream,
                server.synchronous_standby_names,
                server.synchronous_commit,
            ) = row
            if not server.in_recovery:
                server.standbys = list(conn.execute(STANDBYS_SQL).fetchall())
    except psycopg.Error as exc:
        server.error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return server


class PromotionRefused(Exception):
    pass


def promote(
    target: tuple[str, int],
    others: list[tuple[str, int]],
    credentials: dict[str, Any],
    *,
    force: bool = False,
    catch_up: float = 30.0,
    timeout: int = 60,
) -> Server:
    """Promotes the standby at ``target``: it replays what it received, then takes writes.

    Refused when the target is not a standby, or while one of ``others`` still answers as a
    primary (unless ``force``: the operator has fenced it some other way).
    """
    server = inspect(*target, credentials)
    if server.error:
        raise PromotionRefused(f"{server.address} does not answer: {server.error}")
    if not server.in_recovery:
        raise PromotionRefused(f"{server.address} is already a primary")
    for other in others:
        seen = inspect(*other, credentials)
        if seen.role == "primary" and not force:
            raise PromotionRefused(
                f"{seen.address} still answers as a primary: stop or fence it first (a planned "
                "switchover: stop it cleanly, then promote), or pass --force if it is fenced"
            )
    with _connect(*target, credentials, timeout) as conn:
        # Whatever the standby received is replayed before it takes writes of its own.
        deadline = time.monotonic() + catch_up
        while time.monotonic() < deadline:
            row = conn.execute(CAUGHT_UP_SQL).fetchone()
            if row and row[0]:
                break
            time.sleep(0.1)
        row = conn.execute("SELECT pg_promote(true, %s)", (timeout,)).fetchone()
        if not (row and row[0]):
            raise PromotionRefused(f"{server.address} did not finish its promotion within {timeout} s")
        # The new timeline reaches the control file (pg_rewind of the old primary reads it).
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            conn.execute("CHECKPOINT")
    return inspect(*target, credentials)
