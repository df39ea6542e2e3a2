"""Playback beacons: ``POST /api/playback/events`` from the watch page or any player.

Small batches about one playback: QoE samples for /metrics (streaming/qoe.py), and the
heartbeat and stop that keep or free the playback's concurrent-stream lease
(streaming/sessions.py).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.authentication import SessionScheme
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import BearerTokenAuthentication
from accounts.throttling import client_ip, ip_bucket
from videoplatform.api.errors import ApiError
from videoplatform.api.schema import ERROR_RESPONSES
from videoplatform.api.serializers import StrictBooleanField, StrictCharField, StrictInputSerializer
from videos.selectors import video_get

from .. import qoe, sessions

MAX_EVENTS = 50
MAX_BODY_BYTES = 16 * 1024
HOUR_MS = 3_600_000

# The fields each event type carries (besides "type"): required, then optional.
EVENT_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "startup": (("startup_ms",), ("rendition",)),
    "rebuffer": (("duration_ms",), ("rendition",)),
    "rendition_switch": (("from", "to"), ()),
    "error": (("code", "fatal"), ("rendition",)),
    "heartbeat": (("position_s", "watched_ms"), ("rendition",)),
    "stop": ((), ("position_s", "watched_ms", "rendition")),
}


class JsonIntegerField(serializers.IntegerField):
    """A JSON integer: no strings, booleans or fractions turned into numbers."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)  # type: ignore[no-any-return]


class JsonNumberField(serializers.FloatField):
    """A JSON number (integer or fraction), not a string."""

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            self.fail("invalid")
        return super().to_internal_value(data)  # type: ignore[no-any-return]


class PlaybackEventSerializer(StrictInputSerializer):
    type = serializers.ChoiceField(choices=list(EVENT_FIELDS))
    startup_ms = JsonIntegerField(min_value=0, max_value=10 * 60 * 1000, required=False)
    duration_ms = JsonIntegerField(min_value=0, max_value=HOUR_MS, required=False)
    watched_ms = JsonIntegerField(min_value=0, max_value=HOUR_MS, required=False)
    position_s = JsonNumberField(min_value=0, max_value=7 * 24 * 3600, required=False)
    rendition = StrictCharField(max_length=8, required=False, help_text='A rung such as "720p".')
    code = StrictCharField(
        max_length=64, required=False, help_text="hls.js's error details, e.g. fragLoadError."
    )
    fatal = StrictBooleanField(required=False)

    def get_fields(self) -> dict[str, serializers.Field]:  # type: ignore[type-arg]
        fields = super().get_fields()
        # "from" is a Python keyword: declared here so the JSON name stays "from".
        fields["from"] = StrictCharField(
            max_length=8, required=False, help_text='The rung left, e.g. "480p".'
        )
        fields["to"] = StrictCharField(
            max_length=8, required=False, help_text='The rung reached, e.g. "720p".'
        )
        return fields

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        required, optional = EVENT_FIELDS[attrs["type"]]
        missing = [name for name in required if name not in attrs]
        extra = sorted(set(attrs) - {"type", *required, *optional})
        errors = {name: ["This field is required for this event type."] for name in missing}
        errors.update({name: [f"Not a field of a {attrs['type']} event."] for name in extra})
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class PlaybackBatchSerializer(StrictInputSerializer):
    view_id = serializers.UUIDField(help_text="The player's id for this playback (one per view).")
    video_id = StrictCharField(max_length=32)
    events = PlaybackEventSerializer(many=True, allow_empty=False, max_length=MAX_EVENTS)  # type: ignore[call-arg]


class BeaconAuthentication(SessionAuthentication):
    """Session users' beacons come from ``navigator.sendBeacon``, which cannot send a CSRF header.
    A forged beacon can do no harm: it can only add samples (as anyone may) or touch the sender's
    own leases, named by view ids nobody else knows."""

    def enforce_csrf(self, request: Any) -> None:
        return None


class BeaconSessionScheme(SessionScheme):
    """The same cookie session in the OpenAPI schema, without the CSRF header."""

    target_class = "streaming.api.playback.BeaconAuthentication"
    name = "beaconCookieAuth"


class PlaybackEventsView(APIView):
    authentication_classes = [BearerTokenAuthentication, BeaconAuthentication]

    @extend_schema(
        operation_id="playback_events",
        summary="Report playback events (QoE beacons) for one view",
        description=(
            "Batched events from a player about one playback (`view_id`, a UUID the player makes and "
            "also passes to the stream endpoint as `?view_id=`). At most 50 events and 16 KB per batch. "
            "`heartbeat` (every 20 s while playing) renews a signed-in viewer's concurrent-stream lease, "
            "`stop` frees it. Anonymous or with a token; answers 202."
        ),
        request=PlaybackBatchSerializer,
        responses={
            202: OpenApiResponse(description="Accepted."),
            **ERROR_RESPONSES(400, 404),
        },
        examples=[
            OpenApiExample(
                "A start and a heartbeat",
                value={
                    "view_id": "3f0c2a4e-8d5b-4c1e-9a57-0e6f3b2d1c4a",
                    "video_id": "vid_5YqT2",
                    "events": [
                        {"type": "startup", "startup_ms": 840, "rendition": "720p"},
                        {"type": "heartbeat", "position_s": 20.0, "watched_ms": 19500, "rendition": "720p"},
                    ],
                },
                request_only=True,
            )
        ],
        tags=["streaming"],
    )
    def post(self, request: Request) -> Response:
        if not qoe.beacon_allowed(ip_bucket=ip_bucket(client_ip(request))):
            qoe.BEACONS.labels("throttled").inc()
            raise ApiError(status.HTTP_429_TOO_MANY_REQUESTS, "throttled", "Too many playback beacons.")
        try:
            size = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            size = 0
        if size > MAX_BODY_BYTES:
            qoe.BEACONS.labels("invalid").inc()
            raise ApiError(
                status.HTTP_400_BAD_REQUEST,
                "validation_error",
                f"A batch may not exceed {MAX_BODY_BYTES} bytes.",
            )
        batch = PlaybackBatchSerializer(data=request.data)
        if not batch.is_valid():
            qoe.BEACONS.labels("invalid").inc()
            batch.is_valid(raise_exception=True)
        data = batch.validated_data
        video = video_get(
            video_id=data["video_id"], viewer=request.user, fields=("id",)
        )  # 404 if not visible
        lease = str(data["view_id"])
        for event in data["events"]:
            if event["type"] == "heartbeat":
                sessions.stream_lease_renew(user=request.user, lease=lease)
            elif event["type"] == "stop":
                sessions.stream_lease_release(user=request.user, lease=lease)
        qoe.record_events(events=data["events"], user_agent=request.headers.get("User-Agent", ""))
        qoe.record_video_events(video_id=video.pk, view_id=data["view_id"], events=data["events"])
        qoe.BEACONS.labels("accepted").inc()
        return Response(status=status.HTTP_202_ACCEPTED)
