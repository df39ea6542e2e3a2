"""The project package as a Django app (its management commands, its start-up wiring)."""

from __future__ import annotations

from django.apps import AppConfig


class VideoplatformConfig(AppConfig):
    name = "videoplatform"
    verbose_name = "Video platform"

    def ready(self) -> None:
        # The foundation offers hooks; the entry layer registers its listeners here.
        from .entry import response_cache

        response_cache.install()
