"""The stream endpoint: signed, plan-aware HLS URLs for a video the viewer may watch."""

from __future__ import annotations

import math
import uuid

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.throttling import client_ip
from subscriptions.selectors import viewer_entitlement
from videoplatform.api import sharing
from videoplatform.api.errors import ApiError, error_body
from videoplatform.api.negotiation import CachedContentNegotiation
from videoplatform.api.schema import ERROR_RESPONSES
from videos.selectors import video_get

from .. import selectors, services, sessions
from .serializers import NotReadyErrorSerializer, StreamSerializer, stream_representation

MAX_BANDWIDTH = 10**12
# What the stream answer reads of the video (its owner's profile is not needed).
VIDEO_FIELDS = ("id", "is_premium", "status")


def requested_view_id(request: Request) -> uuid.UUID | None:
    """``?view_id=``: the player's id for this playback (a UUID); its stream lease's name."""
    raw = request.query_params.get("view_id")
    if raw is None:
        return None
    try:
        return uuid.UUID(raw.strip())
    except ValueError:
        raise ValidationError({"view_id": ["view_id must be a UUID."]}) from None


def requested_bandwidth(request: Request) -> int | None:
    """``?bandwidth=`` (bits/s; a bad value is a 400), else the ``Downlink`` client hint (Mb/s)."""
    raw = request.query_params.get("bandwidth")
    if raw is not None:
        text = raw.strip()
        if not text.isdigit() or int(text) > MAX_BANDWIDTH:
            raise ValidationError({"bandwidth": ["bandwidth must be a whole number of bits per second."]})
        return int(text)
    hint = request.headers.get("Downlink")
    if hint:
        try:
            megabits = float(hint)
        except ValueError:
            return None  # a malformed hint is ignored, as browsers ignore unknown hints
        if math.isfinite(megabits) and megabits >= 0:
            return int(megabits * 1_000_000)
    return None


class VideoStreamView(APIView):
    content_negotiation_class = CachedContentNegotiation

    @extend_schema(
        operation_id="videos_stream",
        summary="Signed HLS URLs for a video (the renditions the viewer's plan allows)",
        parameters=[
            OpenApiParameter("video_id", OpenApiTypes.STR, OpenApiParameter.PATH),
            OpenApiParameter(
                "bandwidth",
                OpenApiTypes.INT,
                OpenApiParameter.QUERY,
                description="The client's measured bandwidth in bits/s; picks recommended_rendition.",
            ),
            OpenApiParameter(
                "view_id",
                OpenApiTypes.UUID,
                OpenApiParameter.QUERY,
                description="The player's id for this playback: a signed-in viewer's concurrent-stream "
                "lease, renewed by heartbeat beacons to /api/playback/events.",
            ),
            OpenApiParameter(
                "Downlink",
                OpenApiTypes.NUMBER,
                OpenApiParameter.HEADER,
                description="Client hint (Mb/s), used when ?bandwidth= is absent.",
            ),
        ],
        responses={
            200: StreamSerializer,
            409: OpenApiResponse(NotReadyErrorSerializer, description="The video is not ready yet."),
            **ERROR_RESPONSES(400, 403, 404),
        },
        tags=["streaming"],
    )
    def get(self, request: Request, video_id: str) -> Response:
        sharing.never(request)  # signed URLs and a lease of the viewer's own
        bandwidth = requested_bandwidth(request)
        view_id = requested_view_id(request)
        video = video_get(video_id=video_id, viewer=request.user, fields=VIDEO_FIELDS)
        entitlement = viewer_entitlement(request.user)
        try:
            manifest = selectors.stream_manifest(
                video=video,
                viewer=request.user,
                entitlement=entitlement,
                bandwidth=bandwidth,
                base_url=request.build_absolute_uri("/"),
            )
        except selectors.SubscriptionRequired as exc:
            raise ApiError(
                status.HTTP_403_FORBIDDEN,
                "subscription_required",
                "This is a premium video: it needs an active subscription.",
            ) from exc
        except selectors.NoAllowedRendition as exc:
            raise ApiError(
                status.HTTP_403_FORBIDDEN,
                "plan_insufficient",
                f"Your plan allows up to {entitlement.max_resolution}p; "
                "this video has no rendition that low.",
            ) from exc
        except selectors.NotReady as exc:
            body = error_body("video_not_ready", _not_ready_message(exc.status))
            body["error"].update({"status": exc.status, "progress": exc.progress})
            response = Response(body, status=status.HTTP_409_CONFLICT)
            response["Cache-Control"] = "no-store"
            response["Retry-After"] = "5"
            return response
        lease = sessions.lease_id(
            view_id=view_id, ip=client_ip(request), user_agent=request.headers.get("User-Agent", "")
        )
        try:
            services.video_play_start(
                video=video,
                user=request.user,
                lease=lease,
                limit=entitlement.concurrent_streams,
                viewer=services.viewer_key(
                    user=request.user, ip=client_ip(request), user_agent=request.headers.get("User-Agent", "")
                ),
                rendition_quality=manifest.recommended_rendition.quality,
            )
        except sessions.ConcurrentStreamLimit as exc:
            raise ApiError(status.HTTP_403_FORBIDDEN, exc.code, str(exc)) from exc
        response = Response(stream_representation(manifest))
        # Signed for this viewer: never stored by a shared cache.
        response["Cache-Control"] = "private, no-store"
        return response


def _not_ready_message(media_status: str) -> str:
    return {
        "awaiting_upload": "The video has not been uploaded yet.",
        "uploaded": "The video is waiting to be processed.",
        "processing": "The video is being processed.",
        "failed": "The video could not be processed.",
    }.get(media_status, "The video is not ready.")
