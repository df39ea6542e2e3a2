"""Counting SQL: statements per alias and kind, and each request's queries and database time.

An execute wrapper is installed on every database connection when it opens. It counts each
statement in ``db_queries_total{alias, kind}``, adds it to the current request's figures
(``RequestDbStats``), and tells the routing context when a write reached the primary. Writes to
the tables of sharded models do not count as such: those rows are only ever read from their
shard, never from a replica (in the one-database layout the shard is the primary itself), so
they need no read-your-writes care (no ``wrote``, no pin).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created

from videoplatform.metrics import DB_QUERIES, labelled

from .aliases import primary_aliases
from .routing import note_write

_READ_PREFIXES = ("SELECT", "WITH", "SHOW", "EXPLAIN", "VALUES", "TABLE", "FETCH")
_OTHER_PREFIXES = ("SAVEPOINT", "RELEASE", "ROLLBACK", "BEGIN", "COMMIT", "SET", "RESET", "DECLARE", "CLOSE")
_WRITE_WORDS = ("INSERT", "UPDATE", "DELETE", "MERGE")
_WRITTEN_TABLE = re.compile(r'\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+"?([A-Za-z0-9_]+)"?[\s(]', re.I)
_sharded_tables: tuple[object, frozenset[str]] | None = None


def sharded_tables() -> frozenset[str]:
    """The database tables of ``SHARDED_MODELS`` (recomputed when the setting changes)."""
    global _sharded_tables
    configured = settings.SHARDED_MODELS
    cached = _sharded_tables
    if cached is not None and cached[0] is configured:
        return cached[1]
    tables = set()
    for label in configured:
        try:
            tables.add(apps.get_model(label)._meta.db_table)
        except (LookupError, ValueError):
            continue  # the system checks report it
    found = frozenset(tables)
    _sharded_tables = (configured, found)
    return found


def writes_replicated_rows(sql: Any) -> bool:
    """Whether a write statement may change rows that replicas serve (not only sharded ones)."""
    match = _WRITTEN_TABLE.match(sql) if isinstance(sql, str) else None
    return match is None or match.group(1) not in sharded_tables()


def statement_kind(sql: Any) -> str:
    """ "read", "write" or "other" (transaction control, session settings)."""
    if not isinstance(sql, str):  # a composed statement (COPY and the like): not a plain read
        return "other"
    text = sql
    head = text.lstrip()[:12].upper()
    if head.startswith(_READ_PREFIXES):
        # A data-modifying CTE is a write.
        if head.startswith("WITH"):
            upper = text.upper()
            return "write" if any(word in upper for word in _WRITE_WORDS) else "read"
        return "read"
    if head.startswith(_OTHER_PREFIXES):
        return "other"
    return "write"


@dataclass
class RequestDbStats:
    """The SQL of one request (or any block that sets it); also counted in ``parent``."""

    parent: RequestDbStats | None = None
    queries: int = 0
    seconds: float = 0.0
    by_alias: Counter[str] = field(default_factory=Counter)
    reads_by_alias: Counter[str] = field(default_factory=Counter)

    def add(self, alias: str, kind: str, seconds: float) -> None:
        if kind == "other":
            return
        self.queries += 1
        self.seconds += seconds
        self.by_alias[alias] += 1
        if kind == "read":
            self.reads_by_alias[alias] += 1
        if self.parent is not None:
            self.parent.add(alias, kind, seconds)


_request_stats: ContextVar[RequestDbStats | None] = ContextVar("videoplatform_db_stats", default=None)


def current_stats() -> RequestDbStats | None:
    return _request_stats.get()


def start_stats() -> tuple[RequestDbStats, Token[RequestDbStats | None]]:
    """Starts counting into a new RequestDbStats (nested blocks count into their parents too)."""
    stats = RequestDbStats(parent=_request_stats.get())
    return stats, _request_stats.set(stats)


def stop_stats(token: Token[RequestDbStats | None]) -> None:
    _request_stats.reset(token)


def counting_wrapper(execute: Callable[..., Any], sql: Any, params: Any, many: bool, context: Any) -> Any:
    alias = context["connection"].alias
    kind = statement_kind(sql)
    started = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        elapsed = time.perf_counter() - started
        labelled(DB_QUERIES, alias, kind).inc()
        stats = _request_stats.get()
        if stats is not None:
            stats.add(alias, kind, elapsed)
        if kind == "write" and alias in primary_aliases() and writes_replicated_rows(sql):
            note_write()


def instrument(connection: BaseDatabaseWrapper) -> None:
    # First in the list: connection.execute_wrapper() pops the last one on exit, so a block
    # that opened the connection inside its own wrapper must not remove this one.
    if counting_wrapper not in connection.execute_wrappers:
        connection.execute_wrappers.insert(0, counting_wrapper)


def _on_connection_created(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    instrument(connection)


def install() -> None:
    connection_created.connect(_on_connection_created, dispatch_uid="videoplatform.db.instrument")
