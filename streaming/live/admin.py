"""Staff views of live streams and sessions: kick a publisher, disable or enable a stream, end a broadcast."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from . import services
from .exceptions import AlreadyEnded
from .models import LiveSession, LiveStream


class LiveSessionInline(admin.TabularInline):  # type: ignore[type-arg]
    model = LiveSession
    extra = 0
    can_delete = False
    fields = ("id", "status", "connections", "publishing", "started_at", "ended_at", "end_reason", "replay")
    readonly_fields = fields
    ordering = ("-started_at",)
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(LiveStream)
class LiveStreamAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = (
        "id",
        "owner",
        "video",
        "latency_mode",
        "enabled",
        "record",
        "reconnect_window",
        "created_at",
    )
    list_filter = ("enabled", "latency_mode", "record")
    search_fields = ("id", "owner__username", "video__title")
    raw_id_fields = ("owner", "video", "session")
    # The key's digest is useless to staff and must not be edited by hand (reset it via the API).
    exclude = ("stream_key_digest",)
    readonly_fields = ("id", "session", "created_at", "updated_at")
    inlines = [LiveSessionInline]
    actions = ["disable_streams", "enable_streams"]

    @admin.action(description="Disable (refuse publishers, end the broadcast under way)")
    def disable_streams(self, request: HttpRequest, queryset: QuerySet[LiveStream]) -> None:
        for stream in queryset:
            services.live_stream_set_enabled(stream=stream, enabled=False)
        self.message_user(request, f"{queryset.count()} stream(s) disabled.", messages.SUCCESS)

    @admin.action(description="Enable")
    def enable_streams(self, request: HttpRequest, queryset: QuerySet[LiveStream]) -> None:
        for stream in queryset:
            services.live_stream_set_enabled(stream=stream, enabled=True)
        self.message_user(request, f"{queryset.count()} stream(s) enabled.", messages.SUCCESS)


@admin.register(LiveSession)
class LiveSessionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = (
        "id",
        "stream",
        "status",
        "publishing",
        "connections",
        "transcode",
        "started_at",
        "replay",
    )
    list_filter = ("status", "replay", "transcode", "latency_mode")
    search_fields = ("id", "stream__id", "client_addr")
    raw_id_fields = ("stream", "video")
    exclude = ("key_digest",)
    readonly_fields = (
        "id",
        "stream",
        "video",
        "status",
        "connections",
        "publishing",
        "origin_url",
        "client_addr",
        "client_id",
        "latency_mode",
        "transcode",
        "renditions",
        "recordings",
        "record",
        "replay",
        "end_reason",
        "started_at",
        "live_at",
        "disconnected_at",
        "heartbeat_at",
        "ended_at",
    )
    actions = ["kick_publishers", "end_sessions"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Kick the publisher (it may reconnect within the window)")
    def kick_publishers(self, request: HttpRequest, queryset: QuerySet[LiveSession]) -> None:
        kicked = sum(services.live_publisher_drop(session=s) for s in queryset.filter(publishing=True))
        self.message_user(request, f"{kicked} publisher(s) dropped.", messages.SUCCESS)

    @admin.action(description="End the broadcast (its replay is then built)")
    def end_sessions(self, request: HttpRequest, queryset: QuerySet[LiveSession]) -> None:
        ended = 0
        for session in queryset:
            try:
                services.live_session_end(session_id=session.pk, reason="staff")
                ended += 1
            except AlreadyEnded:
                pass
        self.message_user(request, f"{ended} broadcast(s) ended.", messages.SUCCESS)
