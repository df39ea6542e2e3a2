"""Staff pages: the beat schedule with the last run of each job and the queues now, and the
recent task failures with their errors."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from . import stats
from .models import ScheduledRun, TaskFailure
from .recording import BEAT_HEADER
from .schedule import scheduled_job, scheduled_jobs


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ScheduledRun)
class ScheduledRunAdmin(ReadOnlyAdmin):
    """One page: every entry of the schedule defined in code, its last run, and the queues."""

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method == "POST":
            return self._run_now(request)
        runs = {run.name: run for run in ScheduledRun.objects.all()}
        rows = [{"job": job, "run": runs.get(job.name)} for job in scheduled_jobs()]
        report = stats.queue_depths()
        queues = []
        for name in dict.fromkeys(queue for queue, _, _ in report.depths):
            steps = [(label, depth) for queue, label, depth in report.depths if queue == name]
            queues.append({"name": name, "total": report.total(name), "steps": steps})
        context = {
            **self.admin_site.each_context(request),
            "title": "Scheduled jobs",
            "opts": self.model._meta,
            "rows": rows,
            "report": report,
            "queues": queues,
            "failures_url": reverse("admin:jobs_taskfailure_changelist"),
            "can_run": request.user.is_superuser,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/jobs/schedule.html", context)

    def _run_now(self, request: HttpRequest) -> HttpResponse:
        job = scheduled_job(str(request.POST.get("job", "")))
        if not request.user.is_superuser or job is None:
            messages.error(request, "No such scheduled job, or you may not run it.")
        else:
            from celery import current_app  # the project's app (videoplatform/celery.py)

            result = current_app.send_task(job.task, queue=job.queue, headers={BEAT_HEADER: job.name})
            messages.success(request, f"{job.name} queued on {job.queue} (task {result.id}).")
        return HttpResponseRedirect(reverse("admin:jobs_scheduledrun_changelist"))


@admin.register(TaskFailure)
class TaskFailureAdmin(ReadOnlyAdmin):
    list_display = (
        "failed_at",
        "task_name",
        "queue",
        "exception_type",
        "short_message",
        "retries",
        "task_id",
    )
    list_filter = ("queue", "task_name", "exception_type")
    search_fields = ("task_id", "task_name", "message")
    date_hierarchy = "failed_at"
    ordering = ("-failed_at",)
    fields = (
        "failed_at",
        "task_name",
        "task_id",
        "queue",
        "retries",
        "worker",
        "args",
        "exception_type",
        "message",
        "traceback",
    )
    readonly_fields = fields

    @admin.display(description="error")
    def short_message(self, obj: TaskFailure) -> str:
        return obj.message if len(obj.message) <= 120 else obj.message[:119] + "…"
