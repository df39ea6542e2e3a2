"""The inbox endpoints: list (with an unread filter), mark one read, mark all read.

A notification of another user answers 404, as if it did not exist.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import notifications
from accounts.models import Notification
from videoplatform.api.pagination import envelope, page_params
from videoplatform.api.schema import ERROR_RESPONSES, PAGINATION_PARAMETERS, paginated

TAGS = ["notifications"]


class NotificationSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    read = serializers.SerializerMethodField()

    class Meta:
        model = Notification
        fields = ["id", "kind", "title", "body", "data", "read", "read_at", "created_at"]
        read_only_fields = fields

    def get_read(self, obj: Notification) -> bool:
        return obj.read_at is not None


class ReadAllSerializer(serializers.Serializer):  # type: ignore[type-arg]
    updated = serializers.IntegerField(help_text="Notifications that were unread.")


UNREAD_PARAMETER = OpenApiParameter(
    "unread",
    OpenApiTypes.BOOL,
    OpenApiParameter.QUERY,
    description="`true`: only unread notifications; `false`: only read ones; absent: all.",
)


def _unread_filter(request: Request) -> bool | None:
    raw = request.query_params.get("unread")
    if raw is None:
        return None
    value = raw.strip().lower()
    if value not in ("true", "false"):
        raise ValidationError({"unread": ["Must be true or false."]})
    return value == "true"


def _private(response: Response) -> Response:
    response["Cache-Control"] = "private, no-cache"
    return response


class NotificationListView(APIView):
    permission_classes = (IsAuthenticated,)

    @extend_schema(
        operation_id="notifications_list",
        summary="The signed-in user's notifications, newest first",
        parameters=[UNREAD_PARAMETER, *PAGINATION_PARAMETERS],
        responses={200: paginated(NotificationSerializer), **ERROR_RESPONSES(400, 401)},
        tags=TAGS,
    )
    def get(self, request: Request) -> Response:
        unread = _unread_filter(request)
        params = page_params(request)
        items, total = notifications.notification_list(user=request.user, params=params, unread=unread)
        data: Any = NotificationSerializer(items, many=True).data
        return _private(Response(envelope(data, params, total)))


class NotificationReadView(APIView):
    permission_classes = (IsAuthenticated,)

    @extend_schema(
        operation_id="notifications_read",
        summary="Mark one notification read (again: no change)",
        request=None,
        parameters=[OpenApiParameter("notification_id", OpenApiTypes.STR, OpenApiParameter.PATH)],
        responses={200: NotificationSerializer, **ERROR_RESPONSES(401, 404)},
        tags=TAGS,
    )
    def post(self, request: Request, notification_id: str) -> Response:
        notification = notifications.notification_mark_read(
            user=request.user, notification_id=notification_id
        )
        return _private(Response(NotificationSerializer(notification).data))


class NotificationReadAllView(APIView):
    permission_classes = (IsAuthenticated,)

    @extend_schema(
        operation_id="notifications_read_all",
        summary="Mark every unread notification read",
        request=None,
        responses={200: ReadAllSerializer, **ERROR_RESPONSES(401)},
        tags=TAGS,
    )
    def post(self, request: Request) -> Response:
        updated = notifications.notifications_mark_all_read(user=request.user)
        return _private(Response(ReadAllSerializer({"updated": updated}).data))
