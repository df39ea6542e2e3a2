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


class VideoCreateSerializer(VideoWriteSerializer):
    pass


class VideoUpdateSerializer(VideoWriteSerializer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["partial"] = True
        super().__init__(*args, **kwargs)
