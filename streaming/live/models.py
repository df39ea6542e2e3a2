"""Live streams (a broadcaster's channel and its stream key) and live sessions (one broadcast each)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from videoplatform.ids import PrefixedIdField


class LatencyMode(models.TextChoices):
    STANDARD = "standard", "Standard (2 s segments)"
    LOW = "low", "Low (1 s segments)"


class LiveStream(models.Model):
    """A broadcaster's permanent live channel: publish to ``{LIVE_RTMP_URL}/{stream key}``.

    Only the SHA-256 digest of the stream key is stored (like bearer tokens): the key is shown
    once, when created or reset. ``video`` is the video of the next (or current) broadcast; each
    broadcast that is recorded becomes that video's replay, and the stream gets a new video.
    """

    id = PrefixedIdField(prefix="live")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="live_streams")
    video = models.ForeignKey("videos.Video", on_delete=models.CASCADE, related_name="+")
    stream_key_digest = models.CharField(max_length=64, unique=True)
    latency_mode = models.CharField(max_length=10, choices=LatencyMode.choices, default=LatencyMode.STANDARD)
    reconnect_window = models.PositiveIntegerField(
        default=60, help_text="Seconds a dropped publisher has to come back to the same session."
    )
    record = models.BooleanField(default=True, help_text="Keep a replay (the broadcast becomes a video).")
    enabled = models.BooleanField(default=True, help_text="A disabled stream refuses publishers.")
    session = models.ForeignKey(
        "LiveSession",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The current or last broadcast.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "-created_at"], name="live_stream_owner_idx")]

    def __str__(self) -> str:
        return self.pk

    @property
    def status(self) -> str:
        return self.session.status if self.session is not None else "idle"


class LiveSession(models.Model):
    """One broadcast: ``connecting`` → ``live`` ⇄ ``reconnecting`` → ``ended``.

    A publisher that comes back within the stream's reconnect window resumes the same session
    (``connections`` grows; the playlist continues after an ``EXT-X-DISCONTINUITY``).
    """

    class Status(models.TextChoices):
        CONNECTING = "connecting", "Connecting"
        LIVE = "live", "Live"
        RECONNECTING = "reconnecting", "Reconnecting"
        ENDED = "ended", "Ended"

    ACTIVE = (Status.CONNECTING, Status.LIVE, Status.RECONNECTING)

    class Replay(models.TextChoices):
        NONE = "none", "Not recorded"
        PENDING = "pending", "Waiting for the recordings"
        PROCESSING = "processing", "Handed to the transcode"
        FAILED = "failed", "Failed"

    id = PrefixedIdField(prefix="ls")
    stream = models.ForeignKey(LiveStream, on_delete=models.CASCADE, related_name="sessions")
    video = models.ForeignKey("videos.Video", on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.CONNECTING)
    key_digest = models.CharField(max_length=64, help_text="The key it was published with.")
    connections = models.PositiveIntegerField(default=1, help_text="Publishes (1 + reconnects).")
    publishing = models.BooleanField(default=True, help_text="A publisher is connected right now.")
    origin_url = models.CharField(max_length=300, help_text="The ingest's HLS origin holding this session.")
    client_addr = models.CharField(max_length=64, blank=True, default="")
    client_id = models.CharField(
        max_length=40, blank=True, default="", help_text="The ingest's id of the current publisher."
    )
    latency_mode = models.CharField(max_length=10, choices=LatencyMode.choices, default=LatencyMode.STANDARD)
    transcode = models.BooleanField(default=False, help_text="A transcoded ladder (else passthrough).")
    renditions = models.JSONField(default=list, blank=True, help_text="What the packager writes.")
    recordings = models.JSONField(default=list, blank=True, help_text="Storage names of the FLV parts.")
    record = models.BooleanField(default=True)
    replay = models.CharField(max_length=12, choices=Replay.choices, default=Replay.NONE)
    end_reason = models.CharField(max_length=40, blank=True, default="")
    started_at = models.DateTimeField(default=timezone.now)
    live_at = models.DateTimeField(null=True, blank=True)
    disconnected_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            # The sweeper's scan: active sessions by heartbeat.
            models.Index(
                fields=["heartbeat_at"],
                condition=Q(status__in=["connecting", "live", "reconnecting"]),
                name="live_session_active_idx",
            ),
        ]
        constraints = [
            # One broadcast at a time per stream.
            models.UniqueConstraint(
                fields=["stream"],
                condition=Q(status__in=["connecting", "live", "reconnecting"]),
                name="live_session_one_active_per_stream",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.pk} ({self.status})"
