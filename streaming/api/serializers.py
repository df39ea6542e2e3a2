from __future__ import annotations

from rest_framework import serializers


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
