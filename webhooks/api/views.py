"""Webhooks API: thin views over webhooks.selectors and webhooks.services (docs/webhooks.md).

Each user manages their own endpoints; staff see and manage everyone's. Another user's endpoint
answers 404, as if it did not exist.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from videoplatform.api.errors import ApiError
from videoplatform.api.pagination import envelope, page_params
from videoplatform.api.schema import ERROR_RESPONSES, PAGINATION_PARAMETERS, paginated
from videoplatform.api.serializers import StrictInputSerializer
from videoplatform.events import EVENT_TYPES

from .. import selectors, services
from ..exceptions import InvalidTarget, UnknownEventType, WebhookError
from ..models import Delivery
from .serializers import (
    DeliverySerializer,
    EndpointCreateSerializer,
    EndpointSerializer,
    EndpointUpdateSerializer,
    EndpointWithSecretSerializer,
    EventTypeListSerializer,
)

TAGS = ["webhooks"]
ENDPOINT_ID = OpenApiParameter("endpoint_id", OpenApiTypes.STR, OpenApiParameter.PATH)
DELIVERY_ID = OpenApiParameter("delivery_id", OpenApiTypes.STR, OpenApiParameter.PATH)
STATUS_PARAMETER = OpenApiParameter(
    "status",
    OpenApiTypes.STR,
    OpenApiParameter.QUERY,
    enum=list(Delivery.Status.values),
    description="Only deliveries in this status.",
)


def api_error(exc: WebhookError) -> ApiError:
    field = {InvalidTarget: "url", UnknownEventType: "events"}.get(type(exc))
    return ApiError(exc.status, exc.code, exc.message, {field: [exc.message]} if field else None)


def _private(response: Response) -> Response:
    response["Cache-Control"] = "private, no-store"
    return response


class EventTypeListView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="webhooks_event_types",
        summary="The event types an endpoint can receive",
        responses={200: EventTypeListSerializer, **ERROR_RESPONSES(401)},
        tags=TAGS,
    )
    def get(self, request: Request) -> Response:
        data = [{"type": name, "description": text} for name, text in EVENT_TYPES.items()]
        return Response(EventTypeListSerializer({"data": data}).data)


class EndpointListView(APIView):
    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="webhooks_list",
        summary="Your webhook endpoints, newest first (staff: everyone's)",
        parameters=PAGINATION_PARAMETERS,
        responses={200: paginated(EndpointSerializer), **ERROR_RESPONSES(400, 401)},
        tags=TAGS,
    )
    def get(self, request: Request) -> Response:
        params = page_params(request)
        endpoints, total = selectors.endpoint_list(user=request.user, params=params)
        data: Any = EndpointSerializer(endpoints, many=True).data
        return _private(Response(envelope(data, params, total)))

    @extend_schema(
        operation_id="webhooks_create",
        summary="Add a webhook endpoint",
        description=(
            "Events of your resources of the given types are POSTed to `url`, signed per Standard "
            "Webhooks with the `secret` of the answer (shown once). A `ping` event is sent at once. "
            "Production accepts only https URLs of public hosts (`private_target`, `insecure_url`)."
        ),
        request=EndpointCreateSerializer,
        responses={201: EndpointWithSecretSerializer, **ERROR_RESPONSES(400, 401, 409, 415)},
        tags=TAGS,
    )
    def post(self, request: Request) -> Response:
        serializer = EndpointCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            endpoint = services.endpoint_create(owner=request.user, **serializer.validated_data)
        except WebhookError as exc:
            raise api_error(exc) from exc
        return _private(Response(EndpointWithSecretSerializer(endpoint).data, status=status.HTTP_201_CREATED))


class EndpointDetailView(APIView):
    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="webhooks_retrieve",
        summary="A webhook endpoint",
        parameters=[ENDPOINT_ID],
        responses={200: EndpointSerializer, **ERROR_RESPONSES(401, 404)},
        tags=TAGS,
    )
    def get(self, request: Request, endpoint_id: str) -> Response:
        endpoint = selectors.endpoint_get(user=request.user, endpoint_id=endpoint_id)
        return _private(Response(EndpointSerializer(endpoint).data))

    @extend_schema(
        operation_id="webhooks_update",
        summary="Change a webhook endpoint's url, events or active",
        description="`active: true` turns a disabled endpoint back on and clears its failure count.",
        parameters=[ENDPOINT_ID],
        request=EndpointUpdateSerializer,
        responses={200: EndpointSerializer, **ERROR_RESPONSES(400, 401, 404, 415)},
        tags=TAGS,
    )
    def patch(self, request: Request, endpoint_id: str) -> Response:
        endpoint = selectors.endpoint_get(user=request.user, endpoint_id=endpoint_id)
        serializer = EndpointUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            endpoint = services.endpoint_update(endpoint=endpoint, changes=dict(serializer.validated_data))
        except WebhookError as exc:
            raise api_error(exc) from exc
        return _private(Response(EndpointSerializer(endpoint).data))

    @extend_schema(
        operation_id="webhooks_delete",
        summary="Delete a webhook endpoint and its delivery log",
        parameters=[ENDPOINT_ID],
        responses={204: OpenApiResponse(description="Deleted."), **ERROR_RESPONSES(401, 404)},
        tags=TAGS,
    )
    def delete(self, request: Request, endpoint_id: str) -> Response:
        endpoint = selectors.endpoint_get(user=request.user, endpoint_id=endpoint_id)
        services.endpoint_delete(endpoint=endpoint)
        return Response(status=status.HTTP_204_NO_CONTENT)


class RollSecretView(APIView):
    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="webhooks_roll_secret",
        summary="Replace the signing secret (the old one signs too for 24 h)",
        description=(
            "Answers the new `secret` (shown once). Until `previous_secret_expires_at` every message "
            "carries two signatures, one per secret, so receivers can switch without losing any."
        ),
        parameters=[ENDPOINT_ID],
        request=None,
        responses={200: EndpointWithSecretSerializer, **ERROR_RESPONSES(400, 401, 404, 415)},
        tags=TAGS,
    )
    def post(self, request: Request, endpoint_id: str) -> Response:
        StrictInputSerializer(data=request.data).is_valid(raise_exception=True)
        endpoint = selectors.endpoint_get(user=request.user, endpoint_id=endpoint_id)
        endpoint = services.endpoint_roll_secret(endpoint=endpoint)
        return _private(Response(EndpointWithSecretSerializer(endpoint).data))


def _status_filter(request: Request) -> str | None:
    raw = request.query_params.get("status")
    if raw is None:
        return None
    if raw not in Delivery.Status.values:
        raise ValidationError({"status": [f"Must be one of {', '.join(Delivery.Status.values)}."]})
    return raw


class DeliveryListView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="webhooks_deliveries_list",
        summary="An endpoint's deliveries, newest first",
        description=(
            "Each delivery is one event sent to this endpoint: its status (pending, succeeded, "
            "failed), attempts made, the last answer's status code and time, and the next attempt."
        ),
        parameters=[ENDPOINT_ID, STATUS_PARAMETER, *PAGINATION_PARAMETERS],
        responses={200: paginated(DeliverySerializer), **ERROR_RESPONSES(400, 401, 404)},
        tags=TAGS,
    )
    def get(self, request: Request, endpoint_id: str) -> Response:
        endpoint = selectors.endpoint_get(user=request.user, endpoint_id=endpoint_id)
        params = page_params(request)
        deliveries, total = selectors.delivery_list(
            endpoint=endpoint, params=params, status=_status_filter(request)
        )
        data: Any = DeliverySerializer(deliveries, many=True).data
        return _private(Response(envelope(data, params, total)))


class RedeliverView(APIView):
    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="webhooks_deliveries_redeliver",
        summary="Send a delivery again now",
        description=(
            "The same event (same `webhook-id`: receivers that processed it already can skip it), "
            "with a new round of retries. Refused while the endpoint is disabled or an attempt runs."
        ),
        parameters=[ENDPOINT_ID, DELIVERY_ID],
        request=None,
        responses={202: DeliverySerializer, **ERROR_RESPONSES(400, 401, 404, 409, 415)},
        tags=TAGS,
    )
    def post(self, request: Request, endpoint_id: str, delivery_id: str) -> Response:
        StrictInputSerializer(data=request.data).is_valid(raise_exception=True)
        endpoint = selectors.endpoint_get(user=request.user, endpoint_id=endpoint_id)
        delivery = selectors.delivery_get(endpoint=endpoint, delivery_id=delivery_id)
        try:
            delivery = services.delivery_redeliver(delivery=delivery)
        except WebhookError as exc:
            raise api_error(exc) from exc
        return _private(Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED))
