"""Admin: media files with their progress, state and error; renditions; re-running a transcode.

Deleting a media file or a rendition here drops the video's ladder from the cache tiers.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from . import selectors, services
from .models import MediaFile, Rendition


class RenditionInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Rendition
    extra = 0
    can_delete = False
    fields = ("quality", "width", "height", "bandwidth", "codecs", "playlist_path")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(MediaFile)
class MediaFileAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = (
        "id",
        "video",
        "status",
        "progress_percent",
        "duration",
        "resolution",
        "attempts",
        "updated_at",
    )
    list_filter = ("status",)
    search_fields = ("id", "video__id", "video__title")
    list_select_related = ("video",)
    ordering = ("-updated_at",)
    inlines = [RenditionInline]
    actions = ["rerun_transcode"]
    readonly_fields = [field.name for field in MediaFile._meta.fields]

    @admin.display(description="progress", ordering="progress")
    def progress_percent(self, obj: MediaFile) -> str:
        return f"{obj.progress} %"

    @admin.display(description="source size")
    def resolution(self, obj: MediaFile) -> str:
        return f"{obj.width}x{obj.height}" if obj.width and obj.height else "-"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # media files come from uploads

    def save_model(self, request: HttpRequest, obj: MediaFile, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        selectors.media_cache_refresh(video_ids=[obj.video_id])

    def delete_model(self, request: HttpRequest, obj: MediaFile) -> None:
        super().delete_model(request, obj)
        selectors.media_cache_refresh(video_ids=[obj.video_id])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[MediaFile]) -> None:
        video_ids = list(queryset.values_list("video_id", flat=True))
        super().delete_queryset(request, queryset)
        selectors.media_cache_refresh(video_ids=video_ids)

    @admin.action(description="Re-run transcode")
    def rerun_transcode(self, request: HttpRequest, queryset: QuerySet[MediaFile]) -> None:
        started, skipped = 0, 0
        for media_file in queryset:
            if services.media_file_retranscode(media_file=media_file):
                started += 1
            else:
                skipped += 1
        if started:
            self.message_user(request, f"Queued {started} transcode(s).", messages.SUCCESS)
        if skipped:
            self.message_user(
                request,
                f"Skipped {skipped}: nothing uploaded yet, or a worker is transcoding it right now.",
                messages.WARNING,
            )


@admin.register(Rendition)
class RenditionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("media_file", "quality", "width", "height", "bandwidth", "codecs")
    list_select_related = ("media_file",)
    search_fields = ("media_file__id", "media_file__video__id")
    readonly_fields = ("media_file", "quality", "width", "height", "bandwidth", "codecs", "playlist_path")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: Rendition) -> None:
        video_id = MediaFile.objects.filter(pk=obj.media_file_id).values_list("video_id", flat=True).first()
        super().delete_model(request, obj)
        if video_id:
            selectors.media_cache_refresh(video_ids=[video_id])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Rendition]) -> None:
        video_ids = set(queryset.values_list("media_file__video_id", flat=True))
        super().delete_queryset(request, queryset)
        selectors.media_cache_refresh(video_ids=video_ids)
