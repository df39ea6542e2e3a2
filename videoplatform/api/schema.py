"""OpenAPI building blocks: the error shape, the pagination envelope, common parameters."""

from __future__ import annotations

from functools import cache
from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema_field
from rest_framework import serializers

from .errors import STATUS_CODES


@extend_schema_field(
    {
        "oneOf": [
            {"type": "array", "items": {"oneOf": [{"type": "string"}, {"type": "object"}]}},
            {"type": "object"},
        ]
    }
)
class FieldMessagesField(serializers.JSONField):
    """A field's messages; for a list or a nested object, its messages by index or by name."""


class ErrorDetailSerializer(serializers.Serializer):  # type: ignore[type-arg]
    code = serializers.CharField(help_text="Stable, machine-readable error code.")
    message = serializers.CharField(help_text="Human-readable explanation.")
    fields = serializers.DictField(  # type: ignore[assignment]  # a declared field, popped by the metaclass
        child=FieldMessagesField(),
        required=False,
        help_text=(
            "Per-field messages, for validation errors: a list of messages, or for a list or nested "
            'field the messages of each item by index or name (e.g. `{"tags": {"0": ["..."]}}`).'
        ),
    )


class ErrorSerializer(serializers.Serializer):  # type: ignore[type-arg]
    error = ErrorDetailSerializer()


class PaginationSerializer(serializers.Serializer):  # type: ignore[type-arg]
    total = serializers.IntegerField()
    page = serializers.IntegerField()
    limit = serializers.IntegerField()
    total_pages = serializers.IntegerField()
    has_more = serializers.BooleanField()


INVALID_CREDENTIALS = (
    "`not_authenticated`, or credentials were sent and refused: `invalid_token` (unknown or revoked) "
    "or `token_expired`. Endpoints open to everyone still refuse a bad token rather than ignore it."
)


def ERROR_RESPONSES(*codes: int) -> dict[int, OpenApiResponse]:
    """Error responses in the one shape. 401 is always listed: every view that uses these runs the
    API's authentication, which refuses a bad or revoked token even where none is required."""
    responses = {code: OpenApiResponse(ErrorSerializer, description=STATUS_CODES[code][1]) for code in codes}
    responses.setdefault(401, OpenApiResponse(ErrorSerializer, description=INVALID_CREDENTIALS))
    # Every API view runs the API-wide throttle (videoplatform/api/throttling.py).
    responses.setdefault(429, OpenApiResponse(ErrorSerializer, description=STATUS_CODES[429][1]))
    return dict(sorted(responses.items()))


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


class StrictInputSchema(OpenApiSerializerExtension):
    """Strict input serializers refuse unknown fields: say so (``additionalProperties: false``)."""

    target_class = "videoplatform.api.serializers.StrictInputSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        if direction == "request":
            schema["additionalProperties"] = False
        return schema


class FieldSelectionSchema(OpenApiSerializerExtension):
    """With ``?fields=`` an answer holds only the fields asked for: none is required in a response."""

    target_class = "videoplatform.api.fields.FieldSelectionMixin"
    match_subclasses = True

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        if direction == "response":
            schema.pop("required", None)
        return schema
