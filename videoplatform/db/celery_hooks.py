"""Celery and the data layer: a task reads what was committed before it was enqueued.

- Publishing a task stamps two headers: the WAL position it must see (``vp_min_lsn``: the
  commit position of the enqueuing context's writes, else the primary's position when it was
  published), and the client keys of the request (or task) that enqueued it.
- The task reads from a replica that has replayed that position (and its clients' pins), else
  from the primary. A task published without the header (by another producer) reads the
  primary. A task class may decide for itself with ``reads_from_primary = True`` (always) or
  ``False`` (any replica in rotation, no position needed).
- A task that writes to the primary pins the client that enqueued it to its commit position,
  when it finishes.
"""

from __future__ import annotations

import contextlib
from contextvars import Token
from typing import Any

from celery import signals

from .lsn import UNKNOWN, commit_position, from_hex, in_primary_transaction, to_hex
from .routing import (
    RoutingContext,
    current_context,
    enter_context,
    exit_context,
    pin_keys,
    replicas_configured,
)

MIN_LSN_HEADER = "vp_min_lsn"
CLIENTS_HEADER = "vp_clients"

_running: dict[str, tuple[Token[RoutingContext | None], RoutingContext]] = {}


def _header(request: Any, name: str) -> Any:
    value = getattr(request, name, None)
    if value is None:
        value = (getattr(request, "headers", None) or {}).get(name)
    return value


def publish_position() -> int:
    """The position a task published now must see."""
    if not replicas_configured():
        return 0
    if in_primary_transaction():  # its transaction's commit is still to come
        return UNKNOWN
    context = current_context()
    if context is not None:
        return context.commit_lsn()
    return commit_position()


def on_before_task_publish(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    if headers is None:
        return
    if MIN_LSN_HEADER not in headers:
        headers[MIN_LSN_HEADER] = to_hex(publish_position())
    context = current_context()
    if context is not None:
        keys = context.keys()
        if keys:
            headers.setdefault(CLIENTS_HEADER, sorted(keys))


def task_routing(task: Any) -> tuple[str | None, int]:
    """(the reason all reads go to the primary or None, the position its reads need)."""
    policy = getattr(task, "reads_from_primary", None)
    if policy is not None:
        return ("task", 0) if policy else (None, 0)
    position = from_hex(_header(task.request, MIN_LSN_HEADER))
    if position is None:  # published without our hook: assume it follows a commit
        return "task", 0
    return None, position


def on_task_prerun(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    if task_id is None or task is None:
        return
    clients = _header(task.request, CLIENTS_HEADER) or []
    primary_reason, position = task_routing(task)
    context = RoutingContext(
        client_keys={str(key) for key in clients}, primary_reason=primary_reason, min_lsn=position
    )
    _running[task_id] = (enter_context(context), context)


def on_task_postrun(task_id: str | None = None, **kwargs: Any) -> None:
    entry = _running.pop(task_id, None) if task_id is not None else None
    if entry is None:
        return
    token, context = entry
    try:
        if context.wrote and replicas_configured():
            pin_keys(context.keys(), None if in_primary_transaction() else context.commit_lsn())
    finally:
        # ValueError: postrun ran in another context than prerun (exotic pools).
        with contextlib.suppress(ValueError):
            exit_context(token)


def connect() -> None:
    signals.before_task_publish.connect(on_before_task_publish, weak=False, dispatch_uid="vp-db-publish")
    signals.task_prerun.connect(on_task_prerun, weak=False, dispatch_uid="vp-db-prerun")
    signals.task_postrun.connect(on_task_postrun, weak=False, dispatch_uid="vp-db-postrun")
