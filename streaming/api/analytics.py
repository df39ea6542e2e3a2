"""The owner's playback quality report: ``GET /api/videos/{id}/analytics``."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotAuthenticated, PermissionDenied
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from videoplatform.api.schema import ERROR_RESPONSES
from videoplatform.api.serializers import StrictInputSerializer
from videos.selectors import video_get

from .. import analytics

DEFAULT_DAYS = 28
MAX_DAYS = 366


class AnalyticsRangeSerializer(StrictInputSerializer):
    """``?from=&to=`` (ISO dates, UTC days, inclusive): the last 28 days by default, at most 366."""

    to = serializers.DateField(input_formats=["iso-8601"], required=False)

    def get_fields(self) -> dict[str, serializers.Field]:  # type: ignore[type-arg]
        fields = super().get_fields()
        fields["from"] = serializers.DateField(input_formats=["iso-8601"], required=False)  # a keyword
        return fields

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        end: date = attrs.get("to") or datetime.now(UTC).date()
        start: date = attrs.get("from") or end - timedelta(days=DEFAULT_DAYS - 1)
        if start > end:
            raise serializers.ValidationError({"from": ["from must not be after to."]})
        if (end - start).days + 1 > MAX_DAYS:
            raise serializers.ValidationError({"from": [f"A range may span at most {MAX_DAYS} days."]})
        return {"start": start, "end": end}


class QoeSummarySerializer(serializers.Serializer):  # type: ignore[type-arg]
    views = serializers.IntegerField(help_text="Playbacks whose player reported a start-up.")
    startup_p50_ms = serializers.IntegerField(
        allow_null=True, help_text="Median start-up time (upper bound of its 100 ms bucket below 2 s)."
    )
    startup_p95_ms = serializers.IntegerField(allow_null=True, help_text="95th percentile of start-up time.")
    rebuffer_ratio = serializers.FloatField(
        allow_null=True, help_text="Time stalled after start-up / (time played + time stalled)."
    )
    rebuffers = serializers.IntegerField(help_text="Stalls after start-up.")
    # DRF moves declared fields off the class: this does not shadow Serializer.errors.
    errors = serializers.IntegerField(help_text="Player errors it recovered from.")  # type: ignore[assignment]
    fatal_errors = serializers.IntegerField(help_text="Errors that stopped playback.")
    watched_seconds = serializers.FloatField()


class QoeDaySerializer(QoeSummarySerializer):
    day = serializers.DateField()


class VideoAnalyticsSerializer(serializers.Serializer):  # type: ignore[type-arg]
    video_id = serializers.CharField()
    totals = QoeSummarySerializer(help_text="The whole range (percentiles over all its start-ups).")
    days = QoeDaySerializer(many=True, help_text="Days with data, oldest first.")

    def get_fields(self) -> dict[str, serializers.Field]:  # type: ignore[type-arg]
        fields = super().get_fields()
        fields["from"] = serializers.DateField()
        fields["to"] = serializers.DateField()
        return fields


class VideoAnalyticsView(APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="videos_analytics",
        summary="Playback quality of a video per day (owner or staff)",
        description=(
            "From the players' beacons (`POST /api/playback/events`), written per UTC day every few "
            "minutes: views that reported a start-up, start-up P50/P95, rebuffer ratio, errors."
        ),
        parameters=[
            OpenApiParameter(
                "from", OpenApiTypes.DATE, description="First day (UTC); default: 27 days before `to`."
            ),
            OpenApiParameter(
                "to", OpenApiTypes.DATE, description="Last day (UTC), inclusive; default: today."
            ),
        ],
        responses={200: VideoAnalyticsSerializer, **ERROR_RESPONSES(400, 401, 403, 404)},
        tags=["videos"],
    )
    def get(self, request: Request, video_id: str) -> Response:
        if not request.user.is_authenticated:
            raise NotAuthenticated()
        video = video_get(video_id=video_id, viewer=request.user, fields=("id",))
        if video.owner_id != request.user.pk and not request.user.is_staff:
            raise PermissionDenied("Only the owner may read this video's analytics.")
        query = AnalyticsRangeSerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        report = analytics.video_analytics_get(video_id=video.pk, **query.validated_data)
        response = Response(VideoAnalyticsSerializer(report).data)
        response["Cache-Control"] = "private, no-cache"
        return response
