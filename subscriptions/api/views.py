"""Subscriptions API: thin views over subscriptions.selectors and subscriptions.services."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from videoplatform.api import sharing
from videoplatform.api.errors import ApiError, error_body
from videoplatform.api.fields import requested_fields
from videoplatform.api.negotiation import CachedContentNegotiation
from videoplatform.api.rendering import bodies, freeze
from videoplatform.api.representations import represent
from videoplatform.api.schema import ErrorSerializer
from videoplatform.api.serializers import StrictInputSerializer

from .. import selectors, services
from ..billing import PaymentGatewayUnavailable
from ..exceptions import (
    AlreadyCanceled,
    AlreadySubscribed,
    NoCurrentSubscription,
    PaymentDeclined,
    SubscriptionConflict,
)
from ..models import Subscription
from .serializers import (
    PLAN_FIELDS,
    PlanListSerializer,
    PlanSerializer,
    SubscribeSerializer,
    SubscriptionSerializer,
)

TAGS = ["subscriptions"]


def payment_unavailable() -> ApiError:
    return ApiError(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        "payment_unavailable",
        "Payments are unavailable right now; nothing was charged. Try again later.",
    )


def current_user(request: Request) -> AbstractBaseUser:
    user = request.user
    assert isinstance(user, AbstractBaseUser)  # IsAuthenticated ran first
    return user


# --- OpenAPI: the error responses each view can give -------------------------------------------


Example = tuple[str, str, str] | tuple[str, str, str, dict[str, list[str]]]


def error(description: str, *examples: Example) -> OpenApiResponse:
    """An error response in the API's one shape, with (name, code, message[, fields]) examples."""
    return OpenApiResponse(
        ErrorSerializer,
        description=description,
        examples=[
            OpenApiExample(example[0], value=error_body(*example[1:]), response_only=True)
            for example in examples
        ],
    )


VALIDATION_ERROR: Example = (
    "Invalid input",
    "validation_error",
    "Invalid input.",
    {"plan_id": ["Unknown or inactive plan."], "coupon": ["Unknown field."]},
)
MALFORMED = ("Malformed JSON", "malformed_request", "JSON parse error - Expecting value: line 1 column 1")
NOT_AUTHENTICATED = error(
    "No valid credentials.",
    ("Not authenticated", "not_authenticated", "Authentication credentials were not provided."),
)
NO_SUBSCRIPTION = error(
    "The user has no current subscription.",
    ("No subscription", NoCurrentSubscription.code, NoCurrentSubscription.default_message),
)
UNSUPPORTED_MEDIA = error(
    "The body is not JSON.",
    ("Unsupported media type", "unsupported_media_type", 'Unsupported media type "text/plain" in request.'),
)


class PlanListView(APIView):
    """Public: no authentication runs, so the list costs one query (none once cached)."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    content_negotiation_class = CachedContentNegotiation

    @extend_schema(
        operation_id="subscriptions_plans_list",
        summary="List the plans on offer",
        description="Active plans in display order. `?fields=` returns only the named plan fields.",
        tags=TAGS,
        auth=[],
        parameters=[
            OpenApiParameter(
                "fields",
                OpenApiTypes.STR,
                OpenApiParameter.QUERY,
                description=f"Comma-separated plan fields to return; any of: {', '.join(PLAN_FIELDS)}.",
                examples=[OpenApiExample("Names and prices", value="id,name,price")],
            )
        ],
        responses={
            200: PlanListSerializer,
            400: error(
                "An unknown name in `fields`.",
                ("Unknown field", "validation_error", "Invalid input.", {"fields": ["Unknown field(s): x."]}),
            ),
        },
    )
    def get(self, request: Request) -> Response:
        fields = requested_fields(request, PLAN_FIELDS)
        plans = selectors.plan_list_active()
        sharing.share(request, auth=sharing.NO_AUTH, params=("fields",))  # the same for everyone
        # The same plans (every value the serializer reads) are the same body: rendered once per process.
        shown = fields or PLAN_FIELDS
        key = (
            "plans",
            tuple(fields) if fields is not None else None,
            *(tuple(freeze(getattr(plan, name)) for name in shown) for plan in plans),
        )
        return Response(
            bodies().body(
                key, lambda: {"data": represent(PlanSerializer, plans, many=True, context={"fields": fields})}
            )
        )


class SubscriptionCreateView(APIView):
    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="subscriptions_create",
        summary="Subscribe, or change plan",
        description=(
            "Subscribes the user to a plan. A current subscription on another plan is replaced: it ends "
            "now (status `canceled`) and the new one starts a fresh period. The free plan needs no "
            "subscription. Give `plan_id`, or `plan` (a plan code)."
        ),
        tags=TAGS,
        request=SubscribeSerializer,
        responses={
            201: SubscriptionSerializer,
            400: error(
                "Malformed JSON, an unknown or wrongly typed field, or an unknown, inactive or free plan.",
                VALIDATION_ERROR,
                MALFORMED,
            ),
            401: NOT_AUTHENTICATED,
            402: error(
                "The payment gateway declined the charge; nothing changed.",
                ("Declined", PaymentDeclined.code, PaymentDeclined.default_message),
            ),
            409: error(
                "Already subscribed to this plan, or a concurrent change won.",
                ("Already subscribed", AlreadySubscribed.code, AlreadySubscribed.default_message),
                ("Concurrent change", SubscriptionConflict.code, SubscriptionConflict.default_message),
            ),
            415: UNSUPPORTED_MEDIA,
            503: error(
                "The payment gateway could not be reached; nothing changed.",
                ("Payments unavailable", "payment_unavailable", "Payments are unavailable right now."),
            ),
        },
    )
    def post(self, request: Request) -> Response:
        serializer = SubscribeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            subscription = services.subscription_create(
                user=current_user(request), plan=serializer.validated_data["plan"]
            )
        except PaymentGatewayUnavailable as exc:
            raise payment_unavailable() from exc
        return Response(SubscriptionSerializer(subscription).data, status=status.HTTP_201_CREATED)


def _current_subscription(request: Request) -> Subscription:
    subscription = selectors.subscription_get_current(user=current_user(request))
    if subscription is None:
        raise NoCurrentSubscription()
    return subscription


class CurrentSubscriptionView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="subscriptions_me_retrieve",
        summary="The user's current subscription",
        tags=TAGS,
        responses={200: SubscriptionSerializer, 401: NOT_AUTHENTICATED, 404: NO_SUBSCRIPTION},
    )
    def get(self, request: Request) -> Response:
        sharing.never(request)
        return Response(SubscriptionSerializer(_current_subscription(request)).data)


class CancelSubscriptionView(APIView):
    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="subscriptions_me_cancel",
        summary="Cancel the current subscription at period end",
        description=(
            "The subscription stays `active` (and its plan's limits apply) until `current_period_end`; "
            "`cancel_at_period_end` becomes true and `canceled_at` is set. Takes no body."
        ),
        tags=TAGS,
        request=None,
        responses={
            200: SubscriptionSerializer,
            400: error(
                "A body with fields, or malformed JSON.",
                ("Unknown field", "validation_error", "Invalid input.", {"immediately": ["Unknown field."]}),
                MALFORMED,
            ),
            401: NOT_AUTHENTICATED,
            404: NO_SUBSCRIPTION,
            409: error(
                "Already canceled.",
                ("Already canceled", AlreadyCanceled.code, AlreadyCanceled.default_message),
            ),
            415: UNSUPPORTED_MEDIA,
        },
    )
    def post(self, request: Request) -> Response:
        StrictInputSerializer(data=request.data).is_valid(raise_exception=True)
        subscription = _current_subscription(request)
        subscription = services.subscription_cancel(subscription=subscription)
        return Response(SubscriptionSerializer(subscription).data)
