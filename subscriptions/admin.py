"""Staff pages for plans and subscriptions. Lifecycle changes go through the services."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from . import selectors, services
from .exceptions import AlreadyCanceled, NoCurrentSubscription
from .models import Plan, Subscription


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = [
        "name",
        "code",
        "price",
        "currency",
        "interval",
        "max_resolution",
        "concurrent_streams",
        "sort_order",
        "is_active",
    ]
    list_display_links = ["name"]
    list_editable = ["sort_order", "is_active"]
    list_filter = ["is_active", "interval", "currency"]
    search_fields = ["name", "code"]
    ordering = ["sort_order", "price"]
    readonly_fields = ["id", "created_at", "updated_at"]

    # Every way staff change plans (forms, list-editable columns, deletes) refreshes the caches.
    def save_model(self, request: HttpRequest, obj: Plan, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        selectors.plan_cache_invalidate()

    def delete_model(self, request: HttpRequest, obj: Plan) -> None:
        super().delete_model(request, obj)
        selectors.plan_cache_invalidate()

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Plan]) -> None:
        super().delete_queryset(request, queryset)
        selectors.plan_cache_invalidate()


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = [
        "id",
        "user",
        "plan",
        "status",
        "current_period_start",
        "current_period_end",
        "cancel_at_period_end",
        "created_at",
    ]
    list_filter = ["status", "plan", "cancel_at_period_end"]
    list_select_related = ["user", "plan"]
    search_fields = ["=id", "user__username", "user__email"]
    raw_id_fields = ["user"]
    readonly_fields = ["id", "canceled_at", "ended_at", "created_at", "updated_at"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
    # Counting every subscription on each page load is slow at scale.
    show_full_result_count = False
    actions = ["cancel_at_period_end", "expire_now"]

    def save_model(self, request: HttpRequest, obj: Subscription, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        selectors.subscription_cache_refresh(user_ids=[obj.user_id])

    def delete_model(self, request: HttpRequest, obj: Subscription) -> None:
        super().delete_model(request, obj)
        selectors.subscription_cache_refresh(user_ids=[obj.user_id])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> None:
        user_ids = list(queryset.values_list("user_id", flat=True))
        super().delete_queryset(request, queryset)
        selectors.subscription_cache_refresh(user_ids=user_ids)

    @admin.action(description="Cancel at period end")
    def cancel_at_period_end(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> None:
        done, skipped = 0, 0
        for subscription in queryset.select_related("plan"):
            try:
                services.subscription_cancel(subscription=subscription)
            except (NoCurrentSubscription, AlreadyCanceled):
                skipped += 1
            else:
                done += 1
        self._report(request, f"Canceled {done} at period end.", skipped, "not current or already canceled")

    @admin.action(description="Expire now")
    def expire_now(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> None:
        done, skipped = 0, 0
        for subscription in queryset:
            try:
                services.subscription_expire(subscription=subscription)
            except NoCurrentSubscription:
                skipped += 1
            else:
                done += 1
        self._report(request, f"Expired {done}.", skipped, "not current")

    def _report(self, request: HttpRequest, message: str, skipped: int, why: str) -> None:
        if skipped:
            message += f" Skipped {skipped} ({why})."
        self.message_user(request, message, messages.WARNING if skipped else messages.SUCCESS)
