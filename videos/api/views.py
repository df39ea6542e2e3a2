"""Thin views over the catalogue's selectors and services."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotAuthenticated, PermissionDenied
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from videoplatform.api.fields import requested_fields
from videoplatform.api.pagination import envelope, page_params
from videoplatform.api.schema import ERROR_RESPONSES, FIELDS_PARAMETER, PAGINATION_PARAMETERS, paginated

from .. import selectors, services
from .serializers import VIDEO_FIELDS, VideoCreateSerializer, VideoSerializer, VideoUpdateSerializer


def _render(videos: Any, fields: list[str] | None, many: bool = False) -> Any:
    return VideoSerializer(videos, many=many, context={"fields": fields}).data


class VideoCreateMixin:
    def create(self, request: Request) -> Response:
        if not request.user.is_authenticated:
            raise NotAuthenticated()
        serializer = VideoCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        video = services.video_create(owner=request.user, **serializer.validated_data)
        video = selectors.video_get(video_id=video.pk, viewer=request.user)
        return Response(_render(video, None), status=status.HTTP_201_CREATED)


def create_schema(operation_id: str) -> Any:
    return extend_schema(
        operation_id=operation_id,
        summary="Create a video (metadata)",
        request=VideoCreateSerializer,
        responses={201: VideoSerializer, **ERROR_RESPONSES(400, 401)},
        tags=["videos"],
    )


class VideoListView(VideoCreateMixin, APIView):
    @extend_schema(
        operation_id="videos_list",
        summary="The public feed, newest first",
        parameters=[*PAGINATION_PARAMETERS, FIELDS_PARAMETER],
        responses={200: paginated(VideoSerializer), **ERROR_RESPONSES(400)},
        tags=["videos"],
    )
    def get(self, request: Request) -> Response:
        params = page_params(request)
        fields = requested_fields(request, VIDEO_FIELDS)
        videos, total = selectors.video_list_public(viewer=request.user, params=params, fields=fields)
        return Response(envelope(_render(videos, fields, many=True), params, total))

    @create_schema("videos_create")
    def post(self, request: Request) -> Response:
        return self.create(request)


class VideoCreateView(VideoCreateMixin, APIView):
    permission_classes = [IsAuthenticated]

    @create_schema("videos_create_legacy")
    def post(self, request: Request) -> Response:
        return self.create(request)


class VideoDetailView(APIView):
    @extend_schema(
        operation_id="videos_get",
        summary="A video",
        parameters=[FIELDS_PARAMETER],
        responses={200: VideoSerializer, **ERROR_RESPONSES(400, 404)},
        tags=["videos"],
    )
    def get(self, request: Request, video_id: str) -> Response:
        fields = requested_fields(request, VIDEO_FIELDS)
        video = selectors.video_get(video_id=video_id, viewer=request.user, fields=fields)
        return Response(_render(video, fields))

    def _editable(self, request: Request, video_id: str) -> Any:
        if not request.user.is_authenticated:
            raise NotAuthenticated()
        video = selectors.video_get(video_id=video_id, viewer=request.user)
        if video.owner_id != request.user.pk and not request.user.is_staff:
            raise PermissionDenied("Only the owner may change this video.")
        return video

    @extend_schema(
        operation_id="videos_update",
        summary="Change a video (owner or staff)",
        request=VideoUpdateSerializer,
        responses={200: VideoSerializer, **ERROR_RESPONSES(400, 401, 403, 404)},
        tags=["videos"],
    )
    def patch(self, request: Request, video_id: str) -> Response:
        video = self._editable(request, video_id)
        serializer = VideoUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        video = services.video_update(video=video, changes=dict(serializer.validated_data))
        return Response(_render(video, None))

    @extend_schema(
        operation_id="videos_delete",
        summary="Delete a video (owner or staff)",
        responses={204: OpenApiResponse(description="Deleted."), **ERROR_RESPONSES(401, 403, 404)},
        tags=["videos"],
    )
    def delete(self, request: Request, video_id: str) -> Response:
        video = self._editable(request, video_id)
        services.video_delete(video=video)
        return Response(status=status.HTTP_204_NO_CONTENT)


class UserVideoListView(APIView):
    @extend_schema(
        operation_id="users_videos_list",
        summary="A user's videos, newest first (the owner also sees private and unlisted ones)",
        parameters=[
            OpenApiParameter("user_id", OpenApiTypes.STR, OpenApiParameter.PATH),
            *PAGINATION_PARAMETERS,
            FIELDS_PARAMETER,
        ],
        responses={200: paginated(VideoSerializer), **ERROR_RESPONSES(400, 404)},
        tags=["videos"],
    )
    def get(self, request: Request, user_id: str) -> Response:
        params = page_params(request)
        fields = requested_fields(request, VIDEO_FIELDS)
        videos, total = selectors.video_list_for_user(
            user_id=user_id, viewer=request.user, params=params, fields=fields
        )
        return Response(envelope(_render(videos, fields, many=True), params, total))
