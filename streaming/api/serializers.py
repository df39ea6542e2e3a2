"""The stream endpoint's answer: its schema (the serializers) and the builder the view uses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rest_framework import serializers

if TYPE_CHECKING:
    from ..selectors import StreamManifest, StreamRendition


class StreamRenditionSerializer(serializers.Serializer):  # type: ignore[type-arg]
    quality = serializers.IntegerField(help_text="The rung: the short side, e.g. 720 for 720p.")
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    bandwidth = serializers.IntegerField(help_text="Peak bits per second.")
    codecs = serializers.CharField()
    url = serializers.URLField(help_text="Signed media playlist URL.")


class StreamSerializer(serializers.Serializer):  # type: ignore[type-arg]
    video_id = serializers.CharField()
    duration = serializers.FloatField(allow_null=True)
    master_playlist_url = serializers.URLField(
        help_text="Signed master playlist holding only the renditions the viewer's plan allows."
    )
    renditions = StreamRenditionSerializer(many=True)
    recommended_rendition = StreamRenditionSerializer(
        help_text="From ?bandwidth= or the Downlink client hint: > 5 Mb/s 1080p, 2-5 720p, 1-2 480p, "
        "< 1 360p; never above what exists or the plan allows."
    )
    max_resolution = serializers.IntegerField(help_text="The highest rung the viewer's plan allows.")
    expires_at = serializers.DateTimeField(help_text="When every URL in this answer stops working.")
    poster_url = serializers.URLField(allow_null=True)
    thumbnails = serializers.ListField(child=serializers.URLField())
    thumbnail_interval = serializers.IntegerField(allow_null=True, help_text="Seconds between thumbnails.")
    delivery = serializers.ChoiceField(choices=["app", "cdn"], help_text="Who serves the segments.")


class NotReadyErrorDetailSerializer(serializers.Serializer):  # type: ignore[type-arg]
    code = serializers.CharField()
    message = serializers.CharField()
    status = serializers.CharField(
        help_text="The media's state: awaiting_upload, uploaded, processing, failed."
    )
    progress = serializers.IntegerField(help_text="0-100 while processing.")


class NotReadyErrorSerializer(serializers.Serializer):  # type: ignore[type-arg]
    error = NotReadyErrorDetailSerializer()


# --- The answer, built directly ----------------------------------------------------------------
# The stream answer is signed per viewer, so it is built on every request and never reused: the
# dictionaries are written out here rather than walked field by field through StreamSerializer.
# tests/streaming/test_stream_cache.py checks that both give the same data.
_EXPIRES_AT = serializers.DateTimeField()


def _rendition(rendition: StreamRendition) -> dict[str, Any]:
    return {
        "quality": rendition.quality,
        "width": rendition.width,
        "height": rendition.height,
        "bandwidth": rendition.bandwidth,
        "codecs": rendition.codecs,
        "url": rendition.url,
    }


def stream_representation(manifest: StreamManifest) -> dict[str, Any]:
    """What ``StreamSerializer(manifest).data`` holds, in the same order and with the same types."""
    return {
        "video_id": manifest.video_id,
        "duration": None if manifest.duration is None else float(manifest.duration),
        "master_playlist_url": manifest.master_playlist_url,
        "renditions": [_rendition(rendition) for rendition in manifest.renditions],
        "recommended_rendition": _rendition(manifest.recommended_rendition),
        "max_resolution": manifest.max_resolution,
        "expires_at": _EXPIRES_AT.to_representation(manifest.expires_at),
        "poster_url": manifest.poster_url,
        "thumbnails": list(manifest.thumbnails),
        "thumbnail_interval": manifest.thumbnail_interval,
        "delivery": manifest.delivery,
    }
