"""Request and response shapes of the subscriptions API."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from videoplatform.api.fields import FieldSelectionMixin
from videoplatform.api.serializers import StrictCharField, StrictInputSerializer

from ..models import FREE_PLAN_CODE, Plan, Subscription
from ..selectors import plan_get_active


class PlanSerializer(FieldSelectionMixin, serializers.ModelSerializer):  # type: ignore[type-arg]
    """A plan on offer. max_resolution and concurrent_streams are what a subscriber may use."""

    price = serializers.DecimalField(
        max_digits=10,
        decimal_places=2,
        read_only=True,
        help_text='Per interval, as a decimal string: "9.99".',
    )
    features = serializers.ListField(
        child=serializers.CharField(), read_only=True, help_text="Display tags, e.g. hd_720p."
    )

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
    """Every active plan, in display order (not paginated: there are a handful)."""

    # DRF's metaclass moves declared fields off the class: this does not hide Serializer.data.
    data = PlanSerializer(many=True)  # type: ignore[assignment]


class SubscriptionSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    """A subscription. Canceled at period end, it stays active until current_period_end."""

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


class SubscribeSerializer(StrictInputSerializer):
    """The plan to subscribe to: plan_id, or plan (a code). Other fields are refused."""

    plan_id = StrictCharField(required=False, max_length=64, help_text="The plan's id, e.g. plan_…")
    plan = StrictCharField(required=False, max_length=40, help_text="Or the plan's code, e.g. premium.")

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
        if plan.code == FREE_PLAN_CODE:
            raise serializers.ValidationError(
                {field: ["The free plan needs no subscription; cancel your subscription to return to it."]}
            )
        return {"plan": plan}
