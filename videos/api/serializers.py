from __future__ import annotations

from typing import Any

from rest_framework import serializers

from videoplatform.api.fields import FieldSelectionMixin
from videoplatform.api.serializers import StrictBooleanField, StrictCharField, StrictInputSerializer

from ..models import Video

MAX_TAGS = 20
MAX_TAG_LENGTH = 50


class VideoOwnerSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.CharField()
    username = serializers.CharField()
    display_name = serializers.CharField()


class VideoSerializer(FieldSelectionMixin, serializers.ModelSerializer):  # type: ignore[type-arg]
    owner = VideoOwnerSerializer(read_only=True)

    class Meta:
        model = Video
        fields = [
            "id",
            "title",
            "description",
            "tags",
            "privacy",
            "is_adult",
            "is_premium",
            "status",
            "duration",
            "view_count",
            "is_live",
            "owner",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


VIDEO_FIELDS = tuple(VideoSerializer.Meta.fields)


class TagListField(serializers.ListField):
    child = StrictCharField(max_length=MAX_TAG_LENGTH, allow_blank=False)

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", MAX_TAGS)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> list[str]:
        tags = super().to_internal_value(data)
        # Tags are case-insensitive labels: trim, lower-case and de-duplicate, keeping order.
        return list(dict.fromkeys(tag.strip().lower() for tag in tags if tag.strip()))


class VideoWriteSerializer(StrictInputSerializer):
    title = StrictCharField(max_length=200)
    description = StrictCharField(max_length=5000, allow_blank=True, required=False)
    tags = TagListField(required=False)
    privacy = serializers.ChoiceField(choices=Video.Privacy.choices, required=False)
    is_adult = StrictBooleanField(required=False)
    is_premium = StrictBooleanField(required=False)

    def validate_title(self, value: str) -> str:
        value = value.strip()
        if not value:
            raise serializers.ValidationError("This field may not be blank.")
        return value


class VideoUpdateSerializer(VideoWriteSerializer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["partial"] = True
        super().__init__(*args, **kwargs)


# --- Upload intake ---------------------------------------------------------------------------

MAX_UPLOAD_PARTS = 10_000


class VideoUploadFormSerializer(VideoWriteSerializer):
    """The metadata fields of a multipart create (the file itself is the form field ``file``)."""


class VideoCreateSerializer(VideoWriteSerializer):
    """Metadata alone; the answer carries an upload target. The optional hints shape it."""

    file_name = StrictCharField(max_length=255, required=False, help_text="The file's name, e.g. trip.mp4.")
    file_size = serializers.IntegerField(
        min_value=1, required=False, help_text="Bytes; large files get a multipart upload target."
    )
    content_type = StrictCharField(max_length=100, required=False, help_text="e.g. video/mp4.")

    def validate_content_type(self, value: str) -> str:
        if "/" not in value or any(ch.isspace() for ch in value):
            raise serializers.ValidationError("Expected a media type such as video/mp4.")
        return value


class RenditionSerializer(serializers.Serializer):  # type: ignore[type-arg]
    quality = serializers.IntegerField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    bandwidth = serializers.IntegerField()
    codecs = serializers.CharField()


class MediaStateSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """Where a video's media is in the pipeline."""

    status = serializers.CharField(help_text="awaiting_upload, uploaded, processing, ready or failed.")
    progress = serializers.IntegerField(help_text="0-100 while processing.")
    error = serializers.CharField(help_text="Why it failed (or is being retried); empty otherwise.")
    source_size = serializers.IntegerField(allow_null=True)
    duration = serializers.FloatField(allow_null=True)
    width = serializers.IntegerField(allow_null=True)
    height = serializers.IntegerField(allow_null=True)
    fps = serializers.FloatField(allow_null=True)
    video_codec = serializers.CharField()
    audio_codec = serializers.CharField()
    bitrate = serializers.IntegerField(allow_null=True)
    attempts = serializers.IntegerField()
    renditions = RenditionSerializer(many=True, source="renditions.all")
    updated_at = serializers.DateTimeField()


class UploadPartSerializer(serializers.Serializer):  # type: ignore[type-arg]
    part_number = serializers.IntegerField()
    size = serializers.IntegerField(help_text="Exactly this many bytes (the URL signs it).")
    url = serializers.URLField()


class MultipartTargetSerializer(serializers.Serializer):  # type: ignore[type-arg]
    upload_id = serializers.CharField()
    part_size = serializers.IntegerField()
    parts = UploadPartSerializer(many=True)


class UploadTargetSerializer(serializers.Serializer):  # type: ignore[type-arg]
    method = serializers.CharField(
        help_text="POST (S3: a form with `fields` then the file in `file`) or PUT the file's bytes "
        "(this API's upload URL; each part's URL of a multipart upload)."
    )
    url = serializers.CharField(
        allow_null=True, help_text="Presigned S3 URL, or this API's upload URL; null for multipart."
    )
    headers = serializers.DictField(child=serializers.CharField(), help_text="Headers to send with it.")
    expires_at = serializers.DateTimeField(allow_null=True)
    max_bytes = serializers.IntegerField()
    complete_url = serializers.CharField(help_text="POST here when the upload is done (S3 targets).")
    multipart = MultipartTargetSerializer(allow_null=True)

    def get_fields(self) -> dict[str, serializers.Field]:  # type: ignore[type-arg]
        # Declared here: a class attribute named "fields" would shadow Serializer.fields.
        declared = dict(super().get_fields())
        declared["fields"] = serializers.DictField(
            child=serializers.CharField(),
            allow_null=True,
            help_text="For a POST: the form fields to send, in order, before the file.",
        )
        return declared


class VideoCreatedSerializer(VideoSerializer):
    media = MediaStateSerializer(read_only=True, allow_null=True, help_text="When the file came along.")
    upload = UploadTargetSerializer(read_only=True, allow_null=True, help_text="When it did not.")

    class Meta(VideoSerializer.Meta):
        fields = [*VideoSerializer.Meta.fields, "media", "upload"]
        read_only_fields = fields


class CompletedPartSerializer(StrictInputSerializer):
    part_number = serializers.IntegerField(min_value=1, max_value=MAX_UPLOAD_PARTS)
    etag = StrictCharField(max_length=200)


class UploadCompleteSerializer(StrictInputSerializer):
    parts = serializers.ListField(
        child=CompletedPartSerializer(), required=False, max_length=MAX_UPLOAD_PARTS
    )
