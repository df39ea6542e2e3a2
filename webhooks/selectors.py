"""Reads: a user's endpoints (staff: everyone's) and an endpoint's delivery log.

Everything is read from the primary: an owner looks at what they just created or changed, and
the delivery log moves with every attempt.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404

from videoplatform.api.pagination import PageParams, paginate_queryset

from .models import Delivery, Endpoint

PRIMARY = "default"


def _is_staff(user: Any) -> bool:
    return bool(user.is_authenticated and user.is_staff)


def _endpoints_of(user: Any) -> QuerySet[Endpoint]:
    endpoints = Endpoint.objects.using(PRIMARY)
    return endpoints if _is_staff(user) else endpoints.filter(owner_id=user.pk)


def endpoint_list(*, user: Any, params: PageParams) -> tuple[list[Endpoint], int]:
    """The user's endpoints, newest first (staff: every user's)."""
    return paginate_queryset(_endpoints_of(user).order_by("-created_at", "-id"), params)


def endpoint_get(*, user: Any, endpoint_id: str) -> Endpoint:
    """One of the user's endpoints (staff: anyone's); another user's is a 404, as if it did not exist."""
    endpoint = _endpoints_of(user).filter(pk=endpoint_id).first()
    if endpoint is None:
        raise Http404("No such webhook endpoint.")
    return endpoint


def delivery_list(
    *, endpoint: Endpoint, params: PageParams, status: str | None = None
) -> tuple[list[Delivery], int]:
    """An endpoint's deliveries, newest first, with their events."""
    deliveries = Delivery.objects.using(PRIMARY).filter(endpoint_id=endpoint.pk).select_related("event")
    if status is not None:
        deliveries = deliveries.filter(status=status)
    return paginate_queryset(deliveries.order_by("-created_at", "-id"), params)


def delivery_get(*, endpoint: Endpoint, delivery_id: str) -> Delivery:
    delivery = (
        Delivery.objects.using(PRIMARY)
        .filter(endpoint_id=endpoint.pk, pk=delivery_id)
        .select_related("event", "endpoint")
        .first()
    )
    if delivery is None:
        raise Http404("No such delivery.")
    return delivery
