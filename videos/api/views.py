"""Thin views over the catalogue's selectors and services."""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from django.http import QueryDict
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotAuthenticated, PermissionDenied, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from streaming import services as media_services
from streaming.media_tools import MediaToolsUnavailable
from streaming.models import MediaFile
from streaming.probe import InvalidMedia, MediaTooLong, ProbeFailed
from videoplatform.api import sharing
from videoplatform.api.errors import ApiError
from videoplatform.api.fields import requested_fields
from videoplatform.api.negotiation import CachedContentNegotiation
from videoplatform.api.pagination import PageParams, envelope, page_params
from videoplatform.api.rendering import bodies, freeze
from videoplatform.api.representations import represent
from videoplatform.api.schema import (
    ERROR_RESPONSES,
    FIELDS_PARAMETER,
    PAGINATION_PARAMETERS,
    ErrorSerializer,
    paginated,
)

from .. import intake, selectors, services
from ..models import Video
from .serializers import (
    VIDEO_FIELDS,
    MediaStateSerializer,
    UploadCompleteSerializer,
    UploadTargetSerializer,
    VideoCreatedSerializer,
    VideoCreateSerializer,
    VideoSerializer,
    VideoUpdateSerializer,
    VideoUploadFormSerializer,
)
from .uploads import FILE_FIELD, prepare_multipart, receive_body, too_large


def _render(videos: Any, fields: list[str] | None, many: bool = False) -> Any:
    return represent(VideoSerializer, videos, many=many, context={"fields": fields})


def _shown(video: Any, fields: list[str] | None) -> tuple[Hashable, ...]:
    """What the serializer shows of ``video``: the values it reads, as a rendered body's key."""
    loaded = video.__dict__  # the loaded columns; a deferred one is read as the serializer would
    values: list[Hashable] = []
    for name in fields or VIDEO_FIELDS:
        if name == "owner":
            owner = video.owner
            values.append((owner.pk, owner.username, owner.display_name))
        else:
            values.append(freeze(loaded[name] if name in loaded else getattr(video, name)))
    return tuple(values)


def _fields_key(fields: list[str] | None) -> tuple[str, ...] | None:
    return tuple(fields) if fields is not None else None


def _page(kind: str, videos: list[Any], fields: list[str] | None, params: PageParams, total: int) -> Any:
    """A page in the envelope; a page rendered before with the same rows is the same body."""
    key = (kind, params.page, params.limit, total, _fields_key(fields), *(_shown(v, fields) for v in videos))
    return bodies().body(key, lambda: envelope(_render(videos, fields, many=True), params, total))


# Videos every viewer may open by id (when not adult): their answer is the same for everyone.
SHARED_PRIVACY = frozenset({Video.Privacy.PUBLIC, Video.Privacy.UNLISTED})
UNPROCESSABLE = OpenApiResponse(
    ErrorSerializer, description="Not a usable video (no video stream, corrupt, not a media file)."
)
UPLOAD_HINTS = ("file_name", "file_size", "content_type")
# The uploader's plan and daily quotas (streaming.limits).
PLAN_LIMIT = OpenApiResponse(
    ErrorSerializer,
    description="Over the uploader's plan: `plan_duration_limit` or `plan_resolution_limit` "
    "(the message names the limit), or not allowed to change this video.",
)
QUOTA = OpenApiResponse(
    ErrorSerializer,
    description="A daily quota is used up (`upload_quota_exceeded`, `transcode_quota_exceeded`; "
    "the `Retry-After` header says in how many seconds it frees up), or the request rate limit.",
)


@contextmanager
def media_errors() -> Iterator[None]:
    """The media pipeline's refusals as API errors."""
    try:
        yield
    except media_services.UploadTooLarge as exc:
        raise too_large() from exc
    except media_services.UploadStateError as exc:
        raise ApiError(status.HTTP_409_CONFLICT, "upload_conflict", str(exc)) from exc
    except media_services.UploadPartsInvalid as exc:
        raise ApiError(status.HTTP_400_BAD_REQUEST, "invalid_upload_parts", str(exc)) from exc
    except MediaTooLong as exc:
        raise ApiError(status.HTTP_422_UNPROCESSABLE_ENTITY, "video_too_long", str(exc)) from exc
    except InvalidMedia as exc:
        raise ApiError(status.HTTP_422_UNPROCESSABLE_ENTITY, "invalid_media", str(exc)) from exc
    except MediaToolsUnavailable as exc:
        raise ApiError(status.HTTP_503_SERVICE_UNAVAILABLE, "media_tools_unavailable", str(exc)) from exc
    except (ProbeFailed, media_services.MediaStorageUnavailable) as exc:
        raise ApiError(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "service_unavailable",
            "The file could not be checked; retry.",
        ) from exc


def _media_state(media_file: MediaFile) -> Any:
    return MediaStateSerializer(media_file).data


def _owned_video(request: Request, video_id: str) -> Any:
    """A video the requester may change (owner or staff): 401, 404 (not visible) or 403."""
    if not request.user.is_authenticated:
        raise NotAuthenticated()
    video = selectors.video_get(video_id=video_id, viewer=request.user)
    if video.owner_id != request.user.pk and not request.user.is_staff:
        raise PermissionDenied("Only the owner may change this video.")
    return video


class VideoCreateMixin:
    def create(self, request: Request) -> Response:
        if not request.user.is_authenticated:
            raise NotAuthenticated()
        if request.content_type.startswith("multipart/form-data"):
            return self._create_with_file(request)
        serializer = VideoCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        metadata = dict(serializer.validated_data)
        hints = {name: metadata.pop(name) for name in UPLOAD_HINTS if name in metadata}
        with media_errors():
            video, target = intake.video_create_with_upload_target(owner=request.user, **hints, **metadata)
        video = selectors.video_get(video_id=video.pk, viewer=request.user)
        body = _render(video, None)
        body["media"] = None
        body["upload"] = UploadTargetSerializer(target.as_dict()).data
        return Response(body, status=status.HTTP_201_CREATED)

    def _create_with_file(self, request: Request) -> Response:
        handler = prepare_multipart(request)
        try:
            upload = request.FILES.get(FILE_FIELD)
        except BaseException:
            handler.discard()  # a body cut short must not leave its temporary file behind
            raise
        if upload is None:
            raise ValidationError({FILE_FIELD: ['Send the video in the form field "file".']})
        form = cast(QueryDict, request.data)
        fields = {
            name: (form.getlist(name) if name == "tags" else form.get(name))
            for name in form
            if name != FILE_FIELD
        }
        serializer = VideoUploadFormSerializer(data=fields)
        serializer.is_valid(raise_exception=True)
        try:
            with media_errors():
                probe_result = media_services.media_probe_local(path=upload.temporary_file_path())
                video = intake.video_create_with_upload(
                    owner=request.user, upload=upload, probe_result=probe_result, **serializer.validated_data
                )
        finally:
            upload.close()
        video = selectors.video_get(video_id=video.pk, viewer=request.user)
        body = _render(video, None)
        body["media"] = _media_state(MediaFile.objects.get(video_id=video.pk))
        body["upload"] = None
        return Response(body, status=status.HTTP_201_CREATED)


def create_schema(operation_id: str) -> Any:
    return extend_schema(
        operation_id=operation_id,
        summary="Create a video: metadata (answers an upload target) or multipart with the file",
        description=(
            "JSON metadata answers `upload`: where to send the file (a presigned S3 upload, multipart "
            "for large files, or this API's upload URL), then `POST /api/videos/{id}/upload/complete`. "
            "A multipart form with the file in `file` (and the metadata as fields) stores it and "
            "queues transcoding at once; over the size limit is a 413, a file that is not a usable "
            "video a 422, a file over the uploader's plan (duration, resolution) a 403, and a used-up "
            "daily quota (uploads, transcode minutes) a 429 with Retry-After."
        ),
        request={
            "application/json": VideoCreateSerializer,
            "multipart/form-data": {
                "type": "object",
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "title": {"type": "string"},
                    "description": {"type": "string"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "privacy": {"type": "string", "enum": ["public", "unlisted", "private"]},
                    "is_adult": {"type": "boolean"},
                    "is_premium": {"type": "boolean"},
                },
                "required": ["file", "title"],
            },
        },
        responses={
            201: VideoCreatedSerializer,
            422: UNPROCESSABLE,
            **ERROR_RESPONSES(400, 401, 409, 413, 503),
            403: PLAN_LIMIT,
            429: QUOTA,
        },
        tags=["videos"],
    )


class VideoListView(VideoCreateMixin, APIView):
    content_negotiation_class = CachedContentNegotiation

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
        # The feed's page depends on the viewer's adult-content preference and nothing else.
        sharing.share(request, audience=sharing.BY_ADULT, params=("page", "limit", "fields"))
        return Response(_page("feed", videos, fields, params, total))

    @create_schema("videos_create")
    def post(self, request: Request) -> Response:
        return self.create(request)


class VideoCreateView(VideoCreateMixin, APIView):
    permission_classes = [IsAuthenticated]

    @create_schema("videos_create_legacy")
    def post(self, request: Request) -> Response:
        return self.create(request)


class VideoDetailView(APIView):
    content_negotiation_class = CachedContentNegotiation

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
        if video.privacy in SHARED_PRIVACY and not video.is_adult:
            sharing.share(request, params=("fields",))  # whoever asks may see it, and sees the same
        # The selector decided visibility; a video shown before with the same values is the same body.
        key = ("video", _fields_key(fields), _shown(video, fields))
        return Response(bodies().body(key, lambda: _render(video, fields)))

    @extend_schema(
        operation_id="videos_update",
        summary="Change a video (owner or staff)",
        request=VideoUpdateSerializer,
        responses={200: VideoSerializer, **ERROR_RESPONSES(400, 401, 403, 404)},
        tags=["videos"],
    )
    def patch(self, request: Request, video_id: str) -> Response:
        video = _owned_video(request, video_id)
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
        video = _owned_video(request, video_id)
        services.video_delete(video=video)
        return Response(status=status.HTTP_204_NO_CONTENT)


class UserVideoListView(APIView):
    content_negotiation_class = CachedContentNegotiation

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
        return Response(_page("videos", videos, fields, params, total))


class VideoUploadView(APIView):
    """The API upload URL: the file's bytes as the request body."""

    @extend_schema(
        operation_id="videos_upload",
        summary="Upload a video's file (the body is the file) and queue transcoding",
        request={"application/octet-stream": {"type": "string", "format": "binary"}},
        responses={
            202: MediaStateSerializer,
            422: UNPROCESSABLE,
            **ERROR_RESPONSES(400, 401, 403, 404, 409, 413, 503),
            403: PLAN_LIMIT,
            429: QUOTA,
        },
        tags=["videos"],
    )
    def put(self, request: Request, video_id: str) -> Response:
        video = _owned_video(request, video_id)
        media_file = MediaFile.objects.filter(video_id=video.pk).first()
        filename = media_file.source_path.rsplit("/", 1)[-1] if media_file and media_file.source_path else ""
        upload = receive_body(request, filename or "source")
        try:
            with media_errors():
                media_file = media_services.media_file_receive_upload(video=video, upload=upload)
        finally:
            upload.close()
        return Response(_media_state(media_file), status=status.HTTP_202_ACCEPTED)


class VideoUploadCompleteView(APIView):
    @extend_schema(
        operation_id="videos_upload_complete",
        summary="Finish an upload sent to its upload target; queues transcoding",
        description="Multipart S3 uploads send their parts' ETags. Completing twice answers the same state.",
        request=UploadCompleteSerializer,
        responses={
            202: MediaStateSerializer,
            422: UNPROCESSABLE,
            **ERROR_RESPONSES(400, 401, 403, 404, 409, 413, 503),
            403: PLAN_LIMIT,
            429: QUOTA,
        },
        tags=["videos"],
    )
    def post(self, request: Request, video_id: str) -> Response:
        video = _owned_video(request, video_id)
        serializer = UploadCompleteSerializer(data=request.data if request.data else {})
        serializer.is_valid(raise_exception=True)
        parts = [dict(part) for part in serializer.validated_data.get("parts", [])]
        with media_errors():
            media_file = media_services.media_file_complete_upload(video=video, parts=parts or None)
        return Response(_media_state(media_file), status=status.HTTP_202_ACCEPTED)


class VideoMediaView(APIView):
    @extend_schema(
        operation_id="videos_media",
        summary="Where a video's media is in the pipeline (owner or staff): status, progress, error",
        responses={200: MediaStateSerializer, **ERROR_RESPONSES(401, 403, 404)},
        tags=["videos"],
    )
    def get(self, request: Request, video_id: str) -> Response:
        video = _owned_video(request, video_id)
        media_file = MediaFile.objects.filter(video_id=video.pk).prefetch_related("renditions").first()
        if media_file is None:
            raise ApiError(status.HTTP_404_NOT_FOUND, "not_found", "This video has no media yet.")
        response = Response(_media_state(media_file))
        response["Cache-Control"] = "private, no-cache"
        return response
