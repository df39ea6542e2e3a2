"""PostgreSQL for read replicas, falling back to the primary instead of failing a read.

When a replica cannot be reached (connecting fails, its connection died, or the standby
cancelled the query because of a conflict with recovery), the read runs on the primary, the
replica leaves the rotation until its next health check (connection failures only), and
``db_replica_fallbacks_total`` counts it. Inside a transaction on the replica nothing is
retried: reads inside transactions are routed to the primary anyway.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import InterfaceError, OperationalError, connections
from django.db.backends.postgresql import base as postgresql
from django.db.backends.utils import CursorWrapper

from videoplatform.metrics import DB_REPLICA_FALLBACKS

from ..aliases import PRIMARY

logger = logging.getLogger(__name__)

CONNECTION_ERRORS = (OperationalError, InterfaceError)
# serialization_failure: on a hot standby, "canceling statement due to conflict with recovery".
RECOVERY_CONFLICT_SQLSTATES = frozenset({"40001"})


def _sqlstate(error: BaseException) -> str | None:
    return getattr(error.__cause__, "sqlstate", None)


def _connection_lost(replica: DatabaseWrapper) -> bool:
    raw = replica.connection
    if raw is None or getattr(raw, "closed", False):
        return True
    return not replica.is_usable()


def _primary_cursor(replica_alias: str, name: str | None, error: BaseException, *, unreachable: bool) -> Any:
    from ..replicas import monitor

    DB_REPLICA_FALLBACKS.labels(replica_alias).inc()
    if unreachable:
        monitor.mark_unreachable(replica_alias, error)
    logger.warning("read on %s ran on the primary instead: %s", replica_alias, error)
    primary = connections[PRIMARY]
    return primary.chunked_cursor() if name else primary.cursor()


class _FallbackMixin:
    """Re-runs a read on the primary when the replica fails it for replica reasons."""

    cursor: Any
    db: Any

    def execute(self, sql: Any, params: Any = None) -> Any:
        try:
            return super().execute(sql, params)  # type: ignore[misc]
        except CONNECTION_ERRORS as error:
            replica = self.db
            if not isinstance(replica, DatabaseWrapper) or replica.in_atomic_block:
                raise
            conflict = _sqlstate(error) in RECOVERY_CONFLICT_SQLSTATES
            lost = not conflict and _connection_lost(replica)
            if not (conflict or lost):
                raise
            if lost:
                replica.close()
            name = getattr(self.cursor, "name", None)
            fallback = _primary_cursor(replica.alias, name, error, unreachable=lost)
            # From now on this cursor is the primary's: fetches read what the primary returned.
            self.cursor, self.db = fallback.cursor, fallback.db
            return super().execute(sql, params)  # type: ignore[misc]


class ReplicaCursorWrapper(_FallbackMixin, CursorWrapper):
    pass


class ReplicaCursorDebugWrapper(_FallbackMixin, postgresql.CursorDebugWrapper):
    pass


class DatabaseWrapper(postgresql.DatabaseWrapper):
    # The replica monitor's epoch when this connection was opened (see ``replicas.monitor.epoch``).
    _replica_epoch = 0

    def connect(self) -> None:
        from ..replicas import monitor

        super().connect()
        self._replica_epoch = monitor.epoch(self.alias)

    def close_if_unusable_or_obsolete(self) -> None:
        """Also closes a connection opened before the server was found promoted: the next one may
        reach the server that is a standby now (a multi-host URL with target_session_attrs)."""
        from ..replicas import monitor

        stale = self._replica_epoch != monitor.epoch(self.alias)
        if stale and self.connection is not None and not self.in_atomic_block:
            self.close()
            return
        super().close_if_unusable_or_obsolete()

    def _cursor(self, name: str | None = None) -> Any:
        if not self.in_atomic_block:
            try:
                self.close_if_health_check_failed()
                self.ensure_connection()
            except CONNECTION_ERRORS as error:
                return _primary_cursor(self.alias, name, error, unreachable=True)
        return super()._cursor(name)  # type: ignore[misc]

    def make_cursor(self, cursor: Any) -> Any:
        return ReplicaCursorWrapper(cursor, self)

    def make_debug_cursor(self, cursor: Any) -> Any:
        return ReplicaCursorDebugWrapper(cursor, self)
