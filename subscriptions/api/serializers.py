"""Request and response shapes of the subscriptions API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

from videoplatform.api.fields import FieldSelectionMixin

from ..models import Plan, Subscription
from ..selectors import plan_get_active


class PlanSerializer(FieldSelectionMixin, serializers.ModelSerializer):  # type: ignore[type-arg]
    price = serializers.DecimalField(max_digits=10, decimal_places=2, help_text='A decimal string: "9.99".')
    features = serializers.ListField(child=serializers.CharField(), help_text="Display tags, e.g. hd_720p.")

    class Meta:
        model = Plan
        fields = [
            "id",
            "code",
            "name",
            "price",
            "currency",
            "interval",
            "max_resolution",
            "concurrent_streams",
            "features",
            "sort_order",
        ]
        read_only_fields = fields


PLAN_FIELDS: tuple[str, ...] = tuple(PlanSerializer.Meta.fields)


class PlanListSerializer(serializers.Serializer):  # type: ignore[type-arg]
    data = PlanSerializer(many=True)


class SubscriptionSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    plan = PlanSerializer(read_only=True)

    class Meta:
        model = Subscription
        fields = [
            "id",
            "plan",
            "status",
            "current_period_start",
            "current_period_end",
            "cancel_at_period_end",
            "canceled_at",
            "created_at",
        ]
        read_only_fields = fields


class StrictStringField(serializers.CharField):
    """A CharField that refuses numbers and booleans instead of turning them into text."""

    default_error_messages = {"invalid": "Must be a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


class StrictInputSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """Refuses keys it does not know, naming them, rather than ignoring them."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = sorted(str(key) for key in data if key not in self.fields)
            if unknown:
                raise serializers.ValidationError({key: ["Unknown field."] for key in unknown})
        return super().to_internal_value(data)


class SubscribeSerializer(StrictInputSerializer):
    plan_id = StrictStringField(required=False, max_length=64, help_text="The plan's id, e.g. plan_…")
    plan = StrictStringField(required=False, max_length=40, help_text="Or the plan's code, e.g. premium.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        plan_id, code = attrs.get("plan_id"), attrs.get("plan")
        if plan_id is None and code is None:
            raise serializers.ValidationError({"plan_id": ["This field is required."]})
        if plan_id is not None and code is not None:
            raise serializers.ValidationError({"plan": ["Give plan_id or plan, not both."]})
        field = "plan_id" if plan_id is not None else "plan"
        plan = plan_get_active(plan_id=plan_id) if plan_id is not None else plan_get_active(code=code)
        if plan is None:
            raise serializers.ValidationError({field: ["Unknown or inactive plan."]})
        return {"plan": plan}


class ErrorDetailSerializer(serializers.Serializer):  # type: ignore[type-arg]
    code = serializers.CharField(help_text="Stable, machine-readable, e.g. already_subscribed.")
    message = serializers.CharField()

    def get_fields(self) -> dict[str, serializers.Field]:  # type: ignore[type-arg]
        # "fields" cannot be a class attribute: it would hide Serializer.fields.
        declared = super().get_fields()
        declared["fields"] = serializers.DictField(
            child=serializers.ListField(child=serializers.CharField()),
            required=False,
            help_text="Messages per request field, on validation errors.",
        )
        return declared


class SubscriptionErrorSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """The API's one error shape."""

    error = ErrorDetailSerializer()
