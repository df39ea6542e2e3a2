"""Finding videos: search (``GET /api/search?q=``) and a video's related videos
(``GET /api/videos/{id}/recommendations``). Both answer the standard pagination envelope and
take ``?fields=``; both only ever list public, ready videos the viewer may see."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from videoplatform.api.fields import requested_fields
from videoplatform.api.pagination import envelope, page_params
from videoplatform.api.schema import ERROR_RESPONSES, FIELDS_PARAMETER, PAGINATION_PARAMETERS, paginated

from .. import recommendations, search, selectors
from .serializers import VIDEO_FIELDS, VideoSerializer

QUERY_PARAMETER = OpenApiParameter(
    "q",
    OpenApiTypes.STR,
    OpenApiParameter.QUERY,
    required=True,
    description=(
        'What to look for, 1-200 characters: words (all must match), "a phrase", -excluded, '
        "`or`. Titles weigh more than tags, tags more than descriptions."
    ),
)


def _render(videos: Any, fields: list[str] | None) -> Any:
    return VideoSerializer(videos, many=True, context={"fields": fields}).data


def _search_query(request: Request) -> str:
    raw = request.query_params.get("q")
    if raw is None:
        raise ValidationError({"q": ["This parameter is required."]})
    query = " ".join(raw.split())
    if not query:
        raise ValidationError({"q": ["This parameter may not be blank."]})
    if len(query) > settings.SEARCH_QUERY_MAX_LENGTH:
        raise ValidationError(
            {"q": [f"Ensure this parameter has no more than {settings.SEARCH_QUERY_MAX_LENGTH} characters."]}
        )
    if "\x00" in query:
        raise ValidationError({"q": ["Null characters are not allowed."]})
    return query


class SearchView(APIView):
    @extend_schema(
        operation_id="search",
        summary="Search public videos, best match first",
        parameters=[QUERY_PARAMETER, *PAGINATION_PARAMETERS, FIELDS_PARAMETER],
        responses={200: paginated(VideoSerializer), **ERROR_RESPONSES(400)},
        tags=["videos"],
    )
    def get(self, request: Request) -> Response:
        query = _search_query(request)
        params = page_params(request)
        fields = requested_fields(request, VIDEO_FIELDS)
        videos, total = search.video_search(viewer=request.user, query=query, params=params)
        return Response(envelope(_render(videos, fields), params, total))


class RecommendationsView(APIView):
    @extend_schema(
        operation_id="videos_recommendations",
        summary="Related videos, best first (co-watch, then similar tags and titles)",
        parameters=[
            OpenApiParameter("video_id", OpenApiTypes.STR, OpenApiParameter.PATH),
            *PAGINATION_PARAMETERS,
            FIELDS_PARAMETER,
        ],
        responses={200: paginated(VideoSerializer), **ERROR_RESPONSES(400, 404)},
        tags=["videos"],
    )
    def get(self, request: Request, video_id: str) -> Response:
        params = page_params(request)
        fields = requested_fields(request, VIDEO_FIELDS)
        video = selectors.video_get(video_id=video_id, viewer=request.user)
        videos, total = recommendations.related_for_viewer(video=video, viewer=request.user, params=params)
        return Response(envelope(_render(videos, fields), params, total))
