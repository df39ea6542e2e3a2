"""The base class of the platform's tasks: retries with exponential backoff, and a clear end.

    @shared_task(bind=True, base=JobTask, name="accounts.tasks.send_email", max_retries=max_retries("email"))
    def send_email(self, delivery_id):
        try:
            ...
        except TRANSIENT_ERRORS as exc:
            if self.out_of_retries:
                ...  # record the give-up where users see it
            self.retry_later(exc)

Attempt n+1 waits ``JOBS_RETRY_BACKOFF * 2**n`` seconds (capped at ``JOBS_RETRY_BACKOFF_MAX``).
The final failure reaches the ``task_failure`` signal, which records it for staff
(``videoplatform.jobs.recording``).
"""

from __future__ import annotations

from typing import Any, NoReturn

from celery import Task
from django.conf import settings


def backoff_seconds(retries_so_far: int) -> float:
    """Seconds before the next attempt: 5, 10, 20, 40, 80 with the default base."""
    return float(min(settings.JOBS_RETRY_BACKOFF_MAX, settings.JOBS_RETRY_BACKOFF * 2**retries_so_far))


class JobTask(Task):  # type: ignore[misc]
    """A task that retries transient failures with backoff, up to its queue's ``max_retries``."""

    abstract = True
    typing = True

    @property
    def out_of_retries(self) -> bool:
        max_retries = self.max_retries if self.max_retries is not None else 0
        return int(self.request.retries) >= int(max_retries)

    def retry_later(self, exc: BaseException, **options: Any) -> NoReturn:
        """Schedules the next attempt after the backoff; re-raises ``exc`` once retries are used up."""
        if self.out_of_retries:
            raise exc
        countdown = backoff_seconds(int(self.request.retries))
        raise self.retry(exc=exc, countdown=countdown, **options)
