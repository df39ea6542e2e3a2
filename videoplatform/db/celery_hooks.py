"""Celery and the data layer: tasks that run right after a commit read from the primary.

- Publishing a task stamps two headers: when it was enqueued, and the client keys of the
  request (or task) that enqueued it.
- A task enqueued less than ``DB_READ_YOUR_WRITES_WINDOW`` seconds ago runs with every read on
  the primary, so it sees the rows committed just before it was enqueued (enqueue with
  ``delay_on_commit()`` so it is published only after that commit). An older task (a retry,
  a backlog) reads from replicas like a request. A task class may decide for itself with
  ``reads_from_primary = True`` (always) or ``False`` (never).
- A task that writes to the primary pins the client that enqueued it, when it finishes.
"""

from __future__ import annotations

import contextlib
import time
from contextvars import Token
from typing import Any

from celery import signals
from django.conf import settings

from .routing import (
    RoutingContext,
    current_context,
    enter_context,
    exit_context,
    pin_keys,
    replicas_configured,
)

ENQUEUED_AT_HEADER = "vp_enqueued_at"
CLIENTS_HEADER = "vp_clients"

_running: dict[str, tuple[Token[RoutingContext | None], RoutingContext]] = {}


def _header(request: Any, name: str) -> Any:
    value = getattr(request, name, None)
    if value is None:
        value = (getattr(request, "headers", None) or {}).get(name)
    return value


def on_before_task_publish(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    if headers is None:
        return
    headers.setdefault(ENQUEUED_AT_HEADER, time.time())
    context = current_context()
    if context is not None:
        keys = context.keys()
        if keys:
            headers.setdefault(CLIENTS_HEADER, sorted(keys))


def task_reads_from_primary(task: Any) -> bool:
    policy = getattr(task, "reads_from_primary", None)
    if policy is not None:
        return bool(policy)
    enqueued_at = _header(task.request, ENQUEUED_AT_HEADER)
    if enqueued_at is None:  # published without our hook: assume it follows a commit
        return True
    try:
        age = time.time() - float(enqueued_at)
    except (TypeError, ValueError):
        return True
    return age < settings.DB_READ_YOUR_WRITES_WINDOW


def on_task_prerun(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    if task_id is None or task is None:
        return
    clients = _header(task.request, CLIENTS_HEADER) or []
    context = RoutingContext(
        client_keys={str(key) for key in clients},
        primary_reason="task" if task_reads_from_primary(task) else None,
    )
    _running[task_id] = (enter_context(context), context)


def on_task_postrun(task_id: str | None = None, **kwargs: Any) -> None:
    entry = _running.pop(task_id, None) if task_id is not None else None
    if entry is None:
        return
    token, context = entry
    try:
        if context.wrote and replicas_configured():
            pin_keys(context.keys())
    finally:
        # ValueError: postrun ran in another context than prerun (exotic pools).
        with contextlib.suppress(ValueError):
            exit_context(token)


def connect() -> None:
    signals.before_task_publish.connect(on_before_task_publish, weak=False, dispatch_uid="vp-db-publish")
    signals.task_prerun.connect(on_task_prerun, weak=False, dispatch_uid="vp-db-prerun")
    signals.task_postrun.connect(on_task_postrun, weak=False, dispatch_uid="vp-db-postrun")
