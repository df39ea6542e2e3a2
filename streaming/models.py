"""Media processing and delivery, and the viewers' watch history."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from videoplatform.db import ShardedManager
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

    # Finds the shard from user_id in create() / filter(); anything else must name the user.
    objects = ShardedManager()

    class Meta:
        indexes = [models.Index(fields=["user_id", "-started_at"], name="streaming_watch_user_idx")]

    def __str__(self) -> str:
        return f"{self.user_id} watched {self.video_id}"


class MediaFile(models.Model):
    """A video's uploaded source and the state of its HLS ladder.

    ``awaiting_upload`` (an upload target was handed out) → ``uploaded`` → ``processing`` →
    ``ready`` | ``failed``. The ladder lives in storage under ``output_prefix``, one folder per
    transcode run, so a re-run never overwrites segments that a CDN may cache for a year.
    """

    class Status(models.TextChoices):
        AWAITING_UPLOAD = "awaiting_upload", "Awaiting upload"
        UPLOADED = "uploaded", "Uploaded"
        PROCESSING = "processing", "Processing"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    id = PrefixedIdField(prefix="med")
    video = models.OneToOneField("videos.Video", on_delete=models.CASCADE, related_name="media_file")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.AWAITING_UPLOAD)
    progress = models.PositiveSmallIntegerField(default=0, help_text="0-100, while processing.")
    error = models.TextField(blank=True, default="")
    source_path = models.CharField(max_length=500, help_text="Storage name of the uploaded original.")
    source_size = models.PositiveBigIntegerField(null=True, blank=True)
    source_etag = models.CharField(
        max_length=100, blank=True, default="", help_text="The checked version of the source (S3)."
    )
    declared_size = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="The size the client declared; the upload may not exceed it."
    )
    upload_key = models.CharField(
        max_length=500, blank=True, default="", help_text="Staging key the client uploads to (S3)."
    )
    upload_id = models.CharField(max_length=200, blank=True, default="", help_text="S3 multipart upload.")
    # Probe data (ffprobe), filled before any work starts.
    container = models.CharField(
        max_length=20, blank=True, default="", help_text="The demuxer every ffmpeg run uses (-f)."
    )
    duration = models.FloatField(null=True, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    fps = models.FloatField(null=True, blank=True)
    video_codec = models.CharField(max_length=40, blank=True, default="")
    audio_codec = models.CharField(max_length=40, blank=True, default="")
    bitrate = models.PositiveBigIntegerField(null=True, blank=True)
    # Outputs.
    output_prefix = models.CharField(max_length=300, blank=True, default="")
    poster_path = models.CharField(max_length=500, blank=True, default="")
    thumbnail_paths = models.JSONField(default=list, blank=True)
    thumbnail_interval = models.PositiveIntegerField(null=True, blank=True)
    # Bookkeeping of runs: a worker that holds a run touches heartbeat_at while it works.
    attempts = models.PositiveSmallIntegerField(default=0)
    run_token = models.CharField(max_length=40, blank=True, default="")
    run_holder = models.CharField(max_length=200, blank=True, default="", help_text="host:pid of the run.")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    processing_started_at = models.DateTimeField(null=True, blank=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["status", "-updated_at"], name="streaming_media_status_idx")]

    def __str__(self) -> str:
        return f"{self.video_id} ({self.status})"


class Rendition(models.Model):
    """One rung of a media file's HLS ladder: a media playlist and its segments."""

    media_file = models.ForeignKey(MediaFile, on_delete=models.CASCADE, related_name="renditions")
    quality = models.PositiveSmallIntegerField(help_text="The rung: the short side, e.g. 720 for 720p.")
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    bandwidth = models.PositiveIntegerField(help_text="Peak bits per second (the master's BANDWIDTH).")
    codecs = models.CharField(max_length=80)
    playlist_path = models.CharField(max_length=500, help_text="Storage name of the media playlist.")

    class Meta:
        ordering = ["-quality"]
        constraints = [
            models.UniqueConstraint(
                fields=["media_file", "quality"], name="streaming_rendition_one_per_rung"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quality}p ({self.width}x{self.height})"


class VideoQoeDaily(models.Model):
    """One video's playback quality on one UTC day, from its viewers' beacons.

    Written by the roll-up job from the day's totals in Redis (``streaming/analytics.py``); each
    roll-up replaces the row with the totals so far, so running it twice changes nothing.
    """

    video = models.ForeignKey("videos.Video", on_delete=models.CASCADE, related_name="qoe_days")
    day = models.DateField()
    views = models.PositiveIntegerField(default=0, help_text="Playbacks that reported a start-up.")
    startup_histogram = models.JSONField(
        default=dict, blank=True, help_text="Start-ups per bucket: {upper bound in ms: count}."
    )
    startup_p50_ms = models.PositiveIntegerField(null=True, blank=True)
    startup_p95_ms = models.PositiveIntegerField(null=True, blank=True)
    watched_ms = models.PositiveBigIntegerField(default=0)
    rebuffer_ms = models.PositiveBigIntegerField(default=0)
    rebuffers = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0, help_text="Errors the player recovered from.")
    fatal_errors = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["video", "day"], name="streaming_qoe_one_per_video_day"),
        ]

    def __str__(self) -> str:
        return f"{self.video_id} on {self.day}"

    @property
    def rebuffer_ratio(self) -> float | None:
        """Time stalled over time stalled and played (None before anything was played)."""
        total = self.watched_ms + self.rebuffer_ms
        return round(self.rebuffer_ms / total, 6) if total else None
