from __future__ import annotations

from typing import Any

from rest_framework import serializers

from videoplatform.api.serializers import StrictBooleanField, StrictCharField, StrictInputSerializer

from ..models import Delivery, Endpoint, Event


class EndpointSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    owner_id = serializers.CharField(read_only=True)
    events = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = Endpoint
        fields = [
            "id",
            "owner_id",
            "url",
            "events",
            "active",
            "disabled_reason",
            "previous_secret_expires_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class EndpointWithSecretSerializer(EndpointSerializer):
    """An endpoint with its signing secret: only the answers of create and roll-secret carry it."""

    secret = serializers.CharField(read_only=True, help_text="whsec_…: shown once; keep it.")

    class Meta(EndpointSerializer.Meta):
        fields = [*EndpointSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class EventListField(serializers.ListField):
    child = StrictCharField(max_length=50)

    def to_internal_value(self, data: Any) -> list[str]:
        if not isinstance(data, list):
            self.fail("not_a_list", input_type=type(data).__name__)
        return super().to_internal_value(data)  # type: ignore[no-any-return]


class EndpointCreateSerializer(StrictInputSerializer):
    url = StrictCharField(help_text="https://… in production (public hosts only); at most 2,048 characters.")
    events = EventListField(help_text='Event types to receive, e.g. ["video.ready"]; ["*"] for all.')
    active = StrictBooleanField(required=False, default=True)


class EndpointUpdateSerializer(StrictInputSerializer):
    url = StrictCharField(required=False)
    events = EventListField(required=False)
    active = StrictBooleanField(required=False)


class EventSummarySerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    id = serializers.CharField(source="public_id")

    class Meta:
        model = Event
        fields = ["id", "type", "resource_type", "resource_id", "occurred_at"]
        read_only_fields = fields


class DeliverySerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    event = EventSummarySerializer(read_only=True)

    class Meta:
        model = Delivery
        fields = [
            "id",
            "event",
            "status",
            "attempts",
            "next_attempt_at",
            "first_attempt_at",
            "last_attempt_at",
            "response_status",
            "response_ms",
            "last_error",
            "completed_at",
            "created_at",
        ]
        read_only_fields = fields


class EventTypeSerializer(serializers.Serializer):  # type: ignore[type-arg]
    type = serializers.CharField()
    description = serializers.CharField()


class EventTypeListSerializer(serializers.Serializer):  # type: ignore[type-arg]
    data = EventTypeSerializer(many=True)  # type: ignore[assignment]
