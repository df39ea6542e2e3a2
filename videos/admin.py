from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import F, QuerySet
from django.http import HttpRequest

from .models import Video
from .selectors import video_cache_refresh
from .services import ACCESS_FIELDS, video_derived_data_refresh


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
    readonly_fields = ("id", "view_count", "duration", "access_epoch", "created_at", "updated_at")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    actions = ("make_private", "make_public", "purge_cache")
    show_full_result_count = False  # COUNT(*) over a large catalogue is slow

    @admin.action(description="Make selected videos private")
    def make_private(self, request: HttpRequest, queryset: QuerySet[Video]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        updated = (
            Video.objects.filter(pk__in=ids)
            .exclude(privacy=Video.Privacy.PRIVATE)
            .update(privacy=Video.Privacy.PRIVATE, access_epoch=F("access_epoch") + 1)
        )
        video_cache_refresh(video_ids=ids)
        self.message_user(request, f"{updated} video(s) made private.")

    @admin.action(description="Make selected videos public")
    def make_public(self, request: HttpRequest, queryset: QuerySet[Video]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        updated = (
            Video.objects.filter(pk__in=ids)
            .exclude(privacy=Video.Privacy.PUBLIC)
            .update(privacy=Video.Privacy.PUBLIC, access_epoch=F("access_epoch") + 1)
        )
        video_cache_refresh(video_ids=ids)
        self.message_user(request, f"{updated} video(s) made public.")

    @admin.action(description="Purge selected videos from the cache (every process)")
    def purge_cache(self, request: HttpRequest, queryset: QuerySet[Video]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        video_cache_refresh(video_ids=ids)
        self.message_user(
            request, f"Purged {len(ids)} video(s) from every cache tier (re-read from the database)."
        )

    # Edits made here skip the services: they refresh the cache the same way.
    def save_model(self, request: HttpRequest, obj: Video, form: Any, change: bool) -> None:
        if change and ACCESS_FIELDS & set(form.changed_data):
            obj.access_epoch += 1  # links signed before stop working
        super().save_model(request, obj, form, change)
        video_cache_refresh(video_ids=[obj.pk])
        video_derived_data_refresh(video_id=obj.pk)

    def delete_model(self, request: HttpRequest, obj: Video) -> None:
        video_id = obj.pk
        super().delete_model(request, obj)
        video_cache_refresh(video_ids=[video_id])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Video]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        super().delete_queryset(request, queryset)
        video_cache_refresh(video_ids=ids)
