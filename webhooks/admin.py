"""Staff pages: endpoints (turn on or off, never the secret), the delivery log with each attempt,
and redelivery of selected deliveries."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from . import services
from .exceptions import WebhookError
from .models import Attempt, Delivery, Endpoint


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("id", "owner", "url", "active", "consecutive_failures", "disabled_reason", "created_at")
    list_filter = ("active",)
    search_fields = ("id", "url", "owner__username", "owner__email")
    list_select_related = ("owner",)
    ordering = ("-created_at",)
    # The secrets are never shown, here either.
    fields = (
        "id",
        "owner",
        "url",
        "events",
        "active",
        "disabled_reason",
        "consecutive_failures",
        "previous_secret_expires_at",
        "created_at",
        "updated_at",
    )
    readonly_fields = (
        "id",
        "owner",
        "url",
        "events",
        "disabled_reason",
        "consecutive_failures",
        "previous_secret_expires_at",
        "created_at",
        "updated_at",
    )
    actions = ("turn_on", "turn_off")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Endpoint, form: Any, change: bool) -> None:
        # Through the service: turning on clears the failure count, off fails what is pending.
        services.endpoint_update(endpoint=obj, changes={"active": obj.active})

    @admin.action(description="Turn on (clears the failure count)")
    def turn_on(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        for endpoint in queryset:
            services.endpoint_update(endpoint=endpoint, changes={"active": True})
        messages.success(request, f"{queryset.count()} endpoint(s) turned on.")

    @admin.action(description="Turn off (pending deliveries fail)")
    def turn_off(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        for endpoint in queryset:
            services.endpoint_update(endpoint=endpoint, changes={"active": False})
        messages.success(request, f"{queryset.count()} endpoint(s) turned off.")


class AttemptInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Attempt
    extra = 0
    can_delete = False
    fields = ("number", "started_at", "duration_ms", "response_status", "error", "response_body")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = (
        "id",
        "event_type",
        "endpoint",
        "status",
        "attempts",
        "response_status",
        "response_ms",
        "next_attempt_at",
        "created_at",
    )
    list_filter = ("status", "event__type")
    search_fields = ("id", "event__public_id", "endpoint__id", "endpoint__url", "resource_key")
    list_select_related = ("event", "endpoint")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    inlines = (AttemptInline,)
    actions = ("redeliver",)
    fields = (
        "id",
        "endpoint",
        "event",
        "event_body",
        "resource_key",
        "status",
        "attempts",
        "next_attempt_at",
        "retry_until",
        "first_attempt_at",
        "last_attempt_at",
        "response_status",
        "response_ms",
        "last_error",
        "completed_at",
        "created_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # read-only pages; the redeliver action still runs

    @admin.display(description="event", ordering="event__type")
    def event_type(self, obj: Delivery) -> str:
        return obj.event.type

    @admin.display(description="body")
    def event_body(self, obj: Delivery) -> str:
        return obj.event.body

    @admin.action(description="Redeliver now")
    def redeliver(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        sent, refused = 0, []
        for delivery in queryset:
            try:
                services.delivery_redeliver(delivery=delivery)
                sent += 1
            except WebhookError as exc:
                refused.append(f"{delivery.pk}: {exc.message}")
        if sent:
            messages.success(request, f"{sent} deliver{'y' if sent == 1 else 'ies'} sent again.")
        for line in refused:
            messages.error(request, line)
