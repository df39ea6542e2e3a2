"""OpenAPI building blocks: the error shape, the pagination envelope, common parameters."""

from __future__ import annotations

from functools import cache
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from .errors import STATUS_CODES


class ErrorDetailSerializer(serializers.Serializer):  # type: ignore[type-arg]
    code = serializers.CharField(help_text="Stable, machine-readable error code.")
    message = serializers.CharField(help_text="Human-readable explanation.")
    fields = serializers.DictField(  # type: ignore[assignment]  # a declared field, popped by the metaclass
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Per-field messages, for validation errors.",
    )


class ErrorSerializer(serializers.Serializer):  # type: ignore[type-arg]
    error = ErrorDetailSerializer()


class PaginationSerializer(serializers.Serializer):  # type: ignore[type-arg]
    total = serializers.IntegerField()
    page = serializers.IntegerField()
    limit = serializers.IntegerField()
    total_pages = serializers.IntegerField()
    has_more = serializers.BooleanField()


def ERROR_RESPONSES(*codes: int) -> dict[int, OpenApiResponse]:
    return {code: OpenApiResponse(ErrorSerializer, description=STATUS_CODES[code][1]) for code in codes}


@cache
def paginated(item: type[serializers.Serializer]) -> type[serializers.Serializer]:  # type: ignore[type-arg]
    """The source's envelope around a list of ``item``."""
    name = item.__name__.removesuffix("Serializer")
    attrs: dict[str, Any] = {
        "data": item(many=True),
        "pagination": PaginationSerializer(),
        "Meta": type("Meta", (), {"ref_name": f"Paginated{name}"}),
    }
    return type(f"Paginated{name}Serializer", (serializers.Serializer,), attrs)


FIELDS_PARAMETER = OpenApiParameter(
    "fields",
    OpenApiTypes.STR,
    OpenApiParameter.QUERY,
    description="Comma-separated fields to return, e.g. `id,title,view_count`; an unknown field is a 400.",
)
PAGINATION_PARAMETERS = [
    OpenApiParameter(
        "page", OpenApiTypes.INT, OpenApiParameter.QUERY, description="Page number, >= 1 (default 1)."
    ),
    OpenApiParameter(
        "limit", OpenApiTypes.INT, OpenApiParameter.QUERY, description="Items per page, 1-100 (default 20)."
    ),
]
