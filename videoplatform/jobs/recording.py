"""Task signals → what operators see: outcome counters, failures with their errors, and the
last run of each scheduled job.

Beat stamps each message it sends with the header ``vp_beat_entry`` (the entry's name), so a
run is recorded against its schedule entry whichever worker picks it up. Recording never
fails a task: its own errors are logged.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from celery import signals
from django.db.models import F
from django.utils import timezone

from . import stats
from .queues import queue_for

logger = logging.getLogger(__name__)

BEAT_HEADER = "vp_beat_entry"
TEXT_LIMIT = 4000

_started: dict[str, float] = {}


def _request_value(request: Any, name: str) -> Any:
    value = getattr(request, name, None)
    if value is None:
        value = (getattr(request, "headers", None) or {}).get(name)
    return value


def beat_entry_of(task: Any) -> str | None:
    value = _request_value(getattr(task, "request", None), BEAT_HEADER)
    return str(value) if value else None


def queue_of(task: Any, request: Any = None) -> str:
    request = request if request is not None else getattr(task, "request", None)
    info = getattr(request, "delivery_info", None) or {}
    return str(info.get("routing_key") or queue_for(str(getattr(task, "name", "") or "")))


def _count(task: Any, outcome: str, request: Any = None) -> None:
    try:
        stats.outcome_record(queue=queue_of(task, request), task=str(task.name), outcome=outcome)
    except Exception:
        logger.warning("could not count a task outcome", exc_info=True)


def _clip(text: str, limit: int = TEXT_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _args_text(args: Any, kwargs: Any) -> str:
    try:
        text = json.dumps({"args": list(args or ()), "kwargs": dict(kwargs or {})}, default=str)
    except (TypeError, ValueError):
        text = repr((args, kwargs))
    return _clip(text, 2000)


def on_task_prerun(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    if task_id is None or task is None:
        return
    _started[task_id] = time.monotonic()
    entry = beat_entry_of(task)
    if entry is None:
        return
    from .models import ScheduledRun

    try:
        ScheduledRun.objects.update_or_create(
            name=entry,
            defaults={
                "task": task.name,
                "last_task_id": task_id,
                "last_started_at": timezone.now(),
                "last_status": ScheduledRun.Status.RUNNING,
            },
        )
    except Exception:
        logger.warning("could not record the start of scheduled job %s", entry, exc_info=True)


_STATES = {"SUCCESS": "success", "FAILURE": "failure", "RETRY": "retry"}


def on_task_postrun(
    task_id: str | None = None, task: Any = None, retval: Any = None, state: str | None = None, **kwargs: Any
) -> None:
    if task_id is None or task is None:
        return
    started = _started.pop(task_id, None)
    entry = beat_entry_of(task)
    if entry is None:
        return
    from .models import ScheduledRun

    status = _STATES.get(str(state), "failure")
    changes: dict[str, Any] = {
        "last_finished_at": timezone.now(),
        "last_status": status,
        "last_duration": time.monotonic() - started if started is not None else None,
        "runs": F("runs") + 1,
    }
    if status == "success":
        changes["last_result"] = _clip(repr(retval), 500)
        changes["last_error"] = ""
    else:
        changes["last_error"] = _clip(f"{type(retval).__name__}: {retval}")
        if status == "failure":
            changes["failures"] = F("failures") + 1
    try:
        ScheduledRun.objects.filter(name=entry).update(**changes)
    except Exception:
        logger.warning("could not record the end of scheduled job %s", entry, exc_info=True)


def on_task_success(sender: Any = None, **kwargs: Any) -> None:
    if sender is not None:
        _count(sender, "succeeded")


def on_task_retry(sender: Any = None, request: Any = None, **kwargs: Any) -> None:
    if sender is not None:
        _count(sender, "retried", request)


def on_task_failure(
    sender: Any = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    args: Any = None,
    kwargs: Any = None,
    einfo: Any = None,
    **extra: Any,
) -> None:
    if sender is None:
        return
    _count(sender, "failed")
    from .models import TaskFailure

    request = getattr(sender, "request", None)
    try:
        TaskFailure.objects.create(
            task_id=str(task_id or ""),
            task_name=str(sender.name),
            queue=queue_of(sender),
            args=_args_text(args, kwargs),
            exception_type=type(exception).__name__ if exception is not None else "",
            message=_clip(str(exception) if exception is not None else ""),
            traceback=_clip(str(einfo.traceback) if einfo is not None else "", 20000),
            retries=int(getattr(request, "retries", 0) or 0),
            worker=str(getattr(request, "hostname", "") or ""),
        )
    except Exception:
        logger.warning("could not record the failure of task %s", task_id, exc_info=True)


def on_task_rejected(message: Any = None, exc: Any = None, **kwargs: Any) -> None:
    try:
        name = (getattr(message, "headers", None) or {}).get("task", "unknown")
        queue = (getattr(message, "delivery_info", None) or {}).get("routing_key") or queue_for(name)
        stats.outcome_record(queue=str(queue), task=str(name), outcome="rejected")
    except Exception:
        logger.warning("could not count a rejected task", exc_info=True)


def on_task_revoked(sender: Any = None, request: Any = None, expired: bool = False, **kwargs: Any) -> None:
    if sender is not None:
        _count(sender, "expired" if expired else "revoked", request)


def connect() -> None:
    signals.task_prerun.connect(on_task_prerun, weak=False, dispatch_uid="vp-jobs-prerun")
    signals.task_postrun.connect(on_task_postrun, weak=False, dispatch_uid="vp-jobs-postrun")
    signals.task_success.connect(on_task_success, weak=False, dispatch_uid="vp-jobs-success")
    signals.task_retry.connect(on_task_retry, weak=False, dispatch_uid="vp-jobs-retry")
    signals.task_failure.connect(on_task_failure, weak=False, dispatch_uid="vp-jobs-failure")
    signals.task_rejected.connect(on_task_rejected, weak=False, dispatch_uid="vp-jobs-rejected")
    signals.task_revoked.connect(on_task_revoked, weak=False, dispatch_uid="vp-jobs-revoked")
