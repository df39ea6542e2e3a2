from typing import Any

from django.apps import AppConfig


class LiveConfig(AppConfig):
    name = "streaming.live"
    label = "live"
    verbose_name = "Live streaming"

    def ready(self) -> None:
        from videoplatform.metrics import SCRAPE_TIME_REGISTRY

        from .metrics import LiveCollector

        SCRAPE_TIME_REGISTRY.register(LiveCollector())  # type: ignore[arg-type]

        from django.db.models.signals import post_delete

        from .models import LiveSession

        post_delete.connect(_session_deleted, sender=LiveSession, dispatch_uid="live.session_deleted")


def _session_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    """A broadcast deleted while under way (staff deleting its stream in the admin, say): its
    video no longer shows as live in the feeds."""
    if instance.status in ("live", "reconnecting"):
        from videos.services import video_live_set

        video_live_set(video_id=instance.video_id, is_live=False)
