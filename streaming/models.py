"""Media processing and delivery, and the viewers' watch history."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from videoplatform.ids import PrefixedIdField


class WatchEvent(models.Model):
    """One play of a video by a viewer: their watch history.

    Per-user, high-volume data: stored in the shard that the user's id names, so it holds
    plain ids (no foreign keys, no cross-shard joins).
    """

    id = PrefixedIdField(prefix="wev")
    user_id = models.CharField(max_length=32)
    video_id = models.CharField(max_length=32)
    started_at = models.DateTimeField(default=timezone.now)
    position_seconds = models.FloatField(default=0)
    rendition_height = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user_id", "-started_at"], name="streaming_watch_user_idx")]

    def __str__(self) -> str:
        return f"{self.user_id} watched {self.video_id}"
