"""What staff see of background jobs: the last run of each scheduled job and recent failures.

Task outcome counters live in Redis; ``TaskOutcomeCount`` keeps them where there is no Redis
(the embedded default).
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class ScheduledRun(models.Model):
    """The last run of one beat entry, written by the worker that ran it."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCESS = "success", "Succeeded"
        FAILURE = "failure", "Failed"
        RETRY = "retry", "Retrying"

    name = models.CharField(max_length=100, primary_key=True, help_text="The beat entry.")
    task = models.CharField(max_length=200)
    last_task_id = models.CharField(max_length=64, blank=True, default="")
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_finished_at = models.DateTimeField(null=True, blank=True)
    last_status = models.CharField(max_length=10, choices=Status.choices, blank=True, default="")
    last_duration = models.FloatField(null=True, blank=True, help_text="Seconds.")
    last_result = models.CharField(max_length=500, blank=True, default="")
    last_error = models.TextField(blank=True, default="")
    runs = models.PositiveBigIntegerField(default=0)
    failures = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TaskFailure(models.Model):
    """A task that failed for good (its retries used up, or an error not worth retrying)."""

    task_id = models.CharField(max_length=64, db_index=True)
    task_name = models.CharField(max_length=200)
    queue = models.CharField(max_length=50, blank=True, default="")
    args = models.TextField(blank=True, default="", help_text="The arguments, as the task received them.")
    exception_type = models.CharField(max_length=200)
    message = models.TextField(blank=True, default="")
    traceback = models.TextField(blank=True, default="")
    retries = models.PositiveIntegerField(default=0, help_text="Retries made before giving up.")
    worker = models.CharField(max_length=200, blank=True, default="")
    failed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-failed_at", "-id"]
        indexes = [
            models.Index(fields=["-failed_at"], name="jobs_failure_recent_idx"),
            models.Index(fields=["task_name", "-failed_at"], name="jobs_failure_task_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.task_name} {self.task_id}: {self.exception_type}"


class TaskOutcomeCount(models.Model):
    """Task outcomes by queue and task, where no Redis keeps the counters."""

    queue = models.CharField(max_length=50)
    task = models.CharField(max_length=200)
    outcome = models.CharField(max_length=20)
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["queue", "task", "outcome"], name="jobs_outcome_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.queue} {self.task} {self.outcome}: {self.count}"
