from __future__ import annotations

from django.apps import AppConfig


class JobsConfig(AppConfig):
    """Records of scheduled runs and failures, task outcome counters, the staff pages."""

    name = "videoplatform.jobs"
    label = "jobs"
    verbose_name = "Background jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import recording

        recording.connect()
