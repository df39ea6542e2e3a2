"""The live API: create a stream (its key shown once), read it, watch it, end it, reset its key."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import status
from rest_framework.exceptions import NotAuthenticated
from rest_framework.parsers import JSONParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from streaming import selectors as media_selectors
from streaming.api.serializers import stream_representation
from streaming.api.views import requested_bandwidth
from subscriptions.selectors import viewer_entitlement
from videoplatform.api.errors import ApiError, error_body
from videoplatform.api.schema import ERROR_RESPONSES

from .. import selectors, services
from ..exceptions import LiveError, NotLive
from ..models import LiveStream
from .serializers import (
    LiveCreatedSerializer,
    LiveCreateSerializer,
    LiveOwnerSerializer,
    LiveStreamAnswerSerializer,
    LiveStreamSerializer,
    NotLiveErrorSerializer,
    StreamKeySerializer,
    live_representation,
)

LIVE_ID = OpenApiParameter("live_id", OpenApiTypes.STR, OpenApiParameter.PATH)
NO_STORE = "private, no-store"


@contextmanager
def live_errors() -> Iterator[None]:
    """Live's domain errors as API errors."""
    try:
        yield
    except LiveError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from exc


def _body(stream: LiveStream, viewer: Any) -> dict[str, Any]:
    owner_view = bool(viewer.is_authenticated and (viewer.is_staff or viewer.pk == stream.owner_id))
    count = selectors.live_viewer_count(session_id=stream.session_id) if stream.session_id else 0
    body = live_representation(stream, owner_view=owner_view, viewer_count=count)
    if owner_view:
        body["replay_status"] = selectors.replay_status(stream=stream)
    return body


def _answer(body: dict[str, Any], code: int = status.HTTP_200_OK) -> Response:
    response = Response(body, status=code)
    response["Cache-Control"] = NO_STORE
    return response


class LiveCreateView(APIView):
    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="live_create",
        summary="Create a live stream: answers its RTMP URL and stream key (shown once)",
        description="Publish to `{rtmp_url}/{stream_key}` (OBS: Server = rtmp_url, Stream Key = stream_key).",
        request=LiveCreateSerializer,
        responses={201: LiveCreatedSerializer, **ERROR_RESPONSES(400, 415)},
        tags=["live"],
    )
    def post(self, request: Request) -> Response:
        serializer = LiveCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        stream, key = services.live_stream_create(owner=request.user, **serializer.validated_data)
        stream = selectors.live_stream_get_owned(live_id=stream.pk, user=request.user)
        body = _body(stream, request.user)
        body["stream_key"] = key
        return _answer(body, status.HTTP_201_CREATED)


class LiveDetailView(APIView):
    @extend_schema(
        operation_id="live_get",
        summary="A live stream: its status (idle, connecting, live, reconnecting, ended) and session",
        description="The owner also sees rtmp_url, reconnect_window, record, enabled and replay_status "
        "(never the stream key).",
        parameters=[LIVE_ID],
        responses={200: LiveOwnerSerializer, **ERROR_RESPONSES(404)},
        tags=["live"],
    )
    def get(self, request: Request, live_id: str) -> Response:
        with live_errors():
            stream = selectors.live_stream_get(live_id=live_id, viewer=request.user)
        return _answer(_body(stream, request.user))


class LiveResetKeyView(APIView):
    @extend_schema(
        operation_id="live_reset_key",
        summary="Issue a new stream key (the old one stops working; a publisher using it is dropped)",
        parameters=[LIVE_ID],
        request=None,
        responses={200: StreamKeySerializer, **ERROR_RESPONSES(404)},
        tags=["live"],
    )
    def post(self, request: Request, live_id: str) -> Response:
        if not request.user.is_authenticated:
            raise NotAuthenticated()
        with live_errors():
            stream = selectors.live_stream_get_owned(live_id=live_id, user=request.user)
            key = services.live_stream_reset_key(stream=stream)
        return _answer({"id": stream.pk, "rtmp_url": settings.LIVE_RTMP_URL, "stream_key": key})


class LiveEndView(APIView):
    @extend_schema(
        operation_id="live_end",
        summary="End the broadcast now (the owner); its replay is then built when recorded",
        parameters=[LIVE_ID],
        request=None,
        responses={200: LiveOwnerSerializer, **ERROR_RESPONSES(404, 409)},
        tags=["live"],
    )
    def post(self, request: Request, live_id: str) -> Response:
        if not request.user.is_authenticated:
            raise NotAuthenticated()
        with live_errors():
            stream = selectors.live_stream_get_owned(live_id=live_id, user=request.user)
            if stream.session is None or stream.session.status == "ended":
                raise ApiError(
                    status.HTTP_409_CONFLICT, "live_not_broadcasting", "This stream is not broadcasting."
                )
            services.live_session_end(session_id=stream.session.pk, reason="owner")
            stream = selectors.live_stream_get_owned(live_id=live_id, user=request.user)
        return _answer(_body(stream, request.user))


class LiveStreamView(APIView):
    @extend_schema(
        operation_id="live_stream",
        summary="Signed live HLS URLs (the VOD stream answer's shape, plus latency_mode)",
        parameters=[
            LIVE_ID,
            OpenApiParameter(
                "bandwidth",
                OpenApiTypes.INT,
                OpenApiParameter.QUERY,
                description="The client's measured bandwidth in bits/s; picks recommended_rendition.",
            ),
        ],
        responses={
            200: LiveStreamAnswerSerializer,
            409: OpenApiResponse(NotLiveErrorSerializer, description="Not live or reconnecting."),
            **ERROR_RESPONSES(400, 403, 404),
        },
        tags=["live"],
    )
    def get(self, request: Request, live_id: str) -> Response:
        bandwidth = requested_bandwidth(request)
        with live_errors():
            stream = selectors.live_stream_get(live_id=live_id, viewer=request.user)
        entitlement = viewer_entitlement(request.user)
        try:
            live = selectors.live_stream_manifest(
                stream=stream,
                viewer=request.user,
                entitlement=entitlement,
                bandwidth=bandwidth,
                base_url=request.build_absolute_uri("/"),
            )
        except NotLive as exc:
            body = error_body(exc.code, exc.message)
            body["error"]["status"] = exc.live_status
            response = Response(body, status=status.HTTP_409_CONFLICT)
            response["Cache-Control"] = "no-store"
            response["Retry-After"] = "5"
            return response
        except media_selectors.SubscriptionRequired as exc:
            raise ApiError(
                status.HTTP_403_FORBIDDEN,
                "subscription_required",
                "This is a premium live: it needs a subscription.",
            ) from exc
        except media_selectors.NoAllowedRendition as exc:
            raise ApiError(
                status.HTTP_403_FORBIDDEN,
                "plan_insufficient",
                f"Your plan allows up to {entitlement.max_resolution}p; "
                "this broadcast has no rendition that low.",
            ) from exc
        body = stream_representation(live.manifest)
        body.update({"latency_mode": live.latency_mode, "status": live.status, "session_id": live.session_id})
        return _answer(body)


class UserLiveListView(APIView):
    @extend_schema(
        operation_id="users_live_list",
        summary="A user's live streams (broadcasting ones first); private ones only to the owner",
        parameters=[OpenApiParameter("user_id", OpenApiTypes.STR, OpenApiParameter.PATH)],
        responses={
            200: inline_serializer("LiveStreamList", {"data": LiveStreamSerializer(many=True)}),
            **ERROR_RESPONSES(404),
        },
        tags=["live"],
    )
    def get(self, request: Request, user_id: str) -> Response:
        if not get_user_model().objects.filter(pk=user_id, is_active=True).exists():
            raise ApiError(status.HTTP_404_NOT_FOUND, "not_found", "No such user.")
        streams = selectors.live_streams_of_user(user_id=user_id, viewer=request.user)
        return _answer({"data": [_body(stream, request.user) for stream in streams]})
