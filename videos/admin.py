from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from .models import Video


@admin.register(Video)
class VideoAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = (
        "title",
        "id",
        "owner",
        "privacy",
        "status",
        "is_adult",
        "is_premium",
        "view_count",
        "created_at",
    )
    list_filter = ("privacy", "status", "is_adult", "is_premium", "created_at")
    search_fields = ("id", "title", "owner__username", "owner__email")
    list_select_related = ("owner",)
    raw_id_fields = ("owner",)
    readonly_fields = ("id", "view_count", "duration", "created_at", "updated_at")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    actions = ("make_private", "make_public")
    show_full_result_count = False  # COUNT(*) over a large catalogue is slow

    @admin.action(description="Make selected videos private")
    def make_private(self, request: HttpRequest, queryset: QuerySet[Video]) -> None:
        updated = queryset.update(privacy=Video.Privacy.PRIVATE)
        self.message_user(request, f"{updated} video(s) made private.")

    @admin.action(description="Make selected videos public")
    def make_public(self, request: HttpRequest, queryset: QuerySet[Video]) -> None:
        updated = queryset.update(privacy=Video.Privacy.PUBLIC)
        self.message_user(request, f"{updated} video(s) made public.")
