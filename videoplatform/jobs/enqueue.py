"""Enqueueing after the commit of the write that causes a job.

``enqueue_on_commit(task, *args)`` is Celery's ``delay_on_commit`` with one difference: a
broker that cannot take the message is logged, not raised into the request whose write has
already committed (a registration must not answer 500 because the welcome email could not be
queued). Jobs that must not be lost have a sweeper (e.g. queued emails are re-sent by beat).

A task may be given by its registered name (``"accounts.tasks.send_email"``): a module that
enqueues a job then need not import the tasks module, which imports the services (no circle).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.db import transaction

logger = logging.getLogger(__name__)


# One thread imports the tasks modules while the others wait: Celery's import returns at once to
# a second caller while the first is still importing, and that caller's task was then "not
# registered" (the first writes of a fresh server process lost their jobs that way).
_IMPORT_LOCK = threading.Lock()


def task_named(task: Any) -> Any:
    """``task`` itself, or the task registered under that name in the current Celery app."""
    if isinstance(task, str):
        from celery import current_app

        if task not in current_app.tasks:
            with _IMPORT_LOCK:
                if task not in current_app.tasks:
                    current_app.loader.import_default_modules()  # the apps' tasks modules
        return current_app.tasks[task]
    return task


def enqueue_on_commit(task: Any, *args: Any, **kwargs: Any) -> None:
    """Publishes ``task(*args, **kwargs)`` (a task or its name) once the current transaction
    commits; a rollback publishes nothing. Outside a transaction it publishes at once."""

    def publish() -> None:
        name = task if isinstance(task, str) else task.name
        try:
            task_named(task).apply_async(args, kwargs)
        except Exception:
            logger.exception("could not enqueue %s; the broker refused it", name)

    transaction.on_commit(publish)
