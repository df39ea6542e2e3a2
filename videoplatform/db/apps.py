from __future__ import annotations

from django.apps import AppConfig


class DataLayerConfig(AppConfig):
    """Management commands (migrate on every shard, shard reports and rebalancing), system
    checks, and the hooks that count SQL and route Celery tasks' reads."""

    name = "videoplatform.db"
    label = "videoplatform_db"
    verbose_name = "Data layer"

    def ready(self) -> None:
        from . import celery_hooks, checks, instrumentation

        instrumentation.install()
        celery_hooks.connect()
        checks.register()

        from videoplatform.cache import prefetch

        from .routing import prefetch_wants

        prefetch.register(prefetch_wants)
