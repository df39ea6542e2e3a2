"""The live API's input and answers (their schema)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import serializers

from streaming.api.serializers import StreamSerializer
from videoplatform.api.serializers import (
    StrictBooleanField,
    StrictCharField,
    StrictInputSerializer,
    StrictIntegerField,
)
from videos.models import Video

from ..models import LatencyMode, LiveStream
from ..services import MAX_RECONNECT_WINDOW


class LiveCreateSerializer(StrictInputSerializer):
    title = StrictCharField(max_length=200)
    privacy = serializers.ChoiceField(choices=Video.Privacy.choices, default=Video.Privacy.PUBLIC)
    latency_mode = serializers.ChoiceField(choices=LatencyMode.choices, default=LatencyMode.STANDARD)
    reconnect_window = StrictIntegerField(
        min_value=0,
        max_value=MAX_RECONNECT_WINDOW,
        default=60,
        help_text="Seconds a dropped publisher has to come back to the same broadcast (0-1800).",
    )
    record = StrictBooleanField(default=True, help_text="Keep the broadcast as a video (the replay).")


class LiveStreamSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.CharField()
    video_id = serializers.CharField(help_text="The video of the current (or next) broadcast.")
    title = serializers.CharField()
    privacy = serializers.CharField()
    status = serializers.CharField(help_text="idle, connecting, live, reconnecting or ended.")
    session_id = serializers.CharField(allow_null=True, help_text="The current or last broadcast.")
    latency_mode = serializers.ChoiceField(choices=LatencyMode.choices)
    started_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)
    viewer_count = serializers.IntegerField(help_text="Players that fetched a playlist in the last 30 s.")
    replay_video_id = serializers.CharField(
        allow_null=True, help_text="The video the last broadcast became (when recorded)."
    )
    watch_url = serializers.CharField()


class LiveOwnerSerializer(LiveStreamSerializer):
    """What the owner (and staff) see besides."""

    rtmp_url = serializers.CharField(help_text="OBS: Server. Publish to {rtmp_url}/{stream_key}.")
    reconnect_window = serializers.IntegerField()
    record = serializers.BooleanField()
    enabled = serializers.BooleanField()
    replay_status = serializers.CharField(allow_null=True)


class LiveCreatedSerializer(LiveOwnerSerializer):
    stream_key = serializers.CharField(help_text="Shown once: store it (OBS: Stream Key).")


class StreamKeySerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.CharField()
    rtmp_url = serializers.CharField()
    stream_key = serializers.CharField(help_text="Shown once; the previous key no longer works.")


class LiveStreamAnswerSerializer(StreamSerializer):
    latency_mode = serializers.ChoiceField(choices=LatencyMode.choices)
    status = serializers.CharField(help_text="live or reconnecting.")
    session_id = serializers.CharField()


class NotLiveDetailSerializer(serializers.Serializer):  # type: ignore[type-arg]
    code = serializers.CharField()
    message = serializers.CharField()
    status = serializers.CharField(help_text="idle, connecting or ended.")


class NotLiveErrorSerializer(serializers.Serializer):  # type: ignore[type-arg]
    error = NotLiveDetailSerializer()


def live_representation(stream: LiveStream, *, owner_view: bool, viewer_count: int = 0) -> dict[str, Any]:
    session = stream.session
    body: dict[str, Any] = {
        "id": stream.pk,
        "video_id": stream.video_id,
        "title": stream.video.title,
        "privacy": stream.video.privacy,
        "status": stream.status,
        "session_id": session.pk if session else None,
        "latency_mode": stream.latency_mode,
        "started_at": _time(session.started_at) if session else None,
        "ended_at": _time(session.ended_at) if session and session.ended_at else None,
        "viewer_count": viewer_count,
        "replay_video_id": session.video_id
        if session and session.status == "ended" and session.record
        else None,
        "watch_url": f"/watch/live/{stream.pk}",
    }
    if owner_view:
        body.update(
            {
                "rtmp_url": settings.LIVE_RTMP_URL,
                "reconnect_window": stream.reconnect_window,
                "record": stream.record,
                "enabled": stream.enabled,
                "replay_status": session.replay if session else None,
            }
        )
    return body


_TIME = serializers.DateTimeField()


def _time(value: Any) -> Any:
    return _TIME.to_representation(value)
