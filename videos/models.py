"""The catalogue: videos and their metadata."""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.db.models import Q
from django.utils import timezone

from videoplatform.db.indexes import PortableBrinIndex
from videoplatform.ids import PrefixedIdField

from .indexes import PortableGinIndex


class Video(models.Model):
    class Privacy(models.TextChoices):
        PUBLIC = "public", "Public"
        UNLISTED = "unlisted", "Unlisted"
        PRIVATE = "private", "Private"

    class Status(models.TextChoices):
        AWAITING_UPLOAD = "awaiting_upload", "Awaiting upload"
        PROCESSING = "processing", "Processing"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    id = PrefixedIdField(prefix="vid")
    # No index of its own: (owner_id, created_at DESC) below serves every lookup by owner.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="videos", db_index=False
    )
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True, max_length=5000)
    tags = models.JSONField(default=list, blank=True)
    privacy = models.CharField(max_length=10, choices=Privacy.choices, default=Privacy.PUBLIC)
    is_adult = models.BooleanField(default=False)
    is_premium = models.BooleanField(default=False, help_text="Watching needs an active subscription.")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.AWAITING_UPLOAD)
    duration = models.FloatField(null=True, blank=True, help_text="Seconds, once the media is probed.")
    view_count = models.PositiveBigIntegerField(default=0)
    is_live = models.BooleanField(
        default=False,
        help_text="A live broadcast of this video is on (watchable) now; kept by the live services.",
    )
    access_epoch = models.PositiveIntegerField(
        default=0, help_text="Bumped when who may watch changes: media links signed before stop working."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # Source 7.1: a user's videos, newest first.
            models.Index(fields=["owner", "-created_at"], name="videos_owner_created_idx"),
            # Source 7.1: the public feed.
            models.Index(
                fields=["-created_at"],
                condition=Q(privacy="public", is_adult=False),
                name="videos_public_feed_idx",
            ),
            # Source 7.1: time-range scans over the whole, append-mostly table.
            PortableBrinIndex(fields=["created_at"], name="videos_created_brin"),
        ]

    def __str__(self) -> str:
        return self.title


# --- Search and recommendations (videos/search.py, videos/recommendations.py) ----------------


class VideoSearchDocument(models.Model):
    """A video's weighted full-text document: title (A) > tags (B) > description (C).

    Written by the ``indexing`` task after each change to the video; read by search, which
    filters visibility on the video itself (so privacy changes need no re-indexing).
    """

    video = models.OneToOneField(
        Video, on_delete=models.CASCADE, primary_key=True, related_name="search_document"
    )
    document = SearchVectorField(null=True)
    indexed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [PortableGinIndex(fields=["document"], name="videos_search_doc_gin")]

    def __str__(self) -> str:
        return f"search document of {self.video_id}"


class RelatedVideos(models.Model):
    """A video's related videos, best first, computed by the ``recommendation`` task.

    ``items`` is ``[{"video_id", "score", "source": "cowatch" | "similar"}, ...]``; reads filter
    them by what the viewer may see.
    """

    video = models.OneToOneField(
        Video, on_delete=models.CASCADE, primary_key=True, related_name="related_videos"
    )
    items = models.JSONField(default=list, blank=True)
    cowatchers = models.PositiveIntegerField(default=0, help_text="Viewers of this video in the window.")
    computed_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        verbose_name_plural = "related videos"

    def __str__(self) -> str:
        return f"related videos of {self.video_id}"
