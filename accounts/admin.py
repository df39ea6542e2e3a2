"""Admin for users and their API tokens.

Every change made here that a token check depends on (a user edited, deactivated, deleted or
given a new password; a token revoked) goes through the services, so the "tokens" cache follows.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from . import services
from .models import AuthToken, EmailDelivery, Notification, User


class _EmailUniqueMixin(forms.ModelForm):  # type: ignore[type-arg]
    """Case-insensitive email uniqueness as a field error (the constraint alone gives a vague one)."""

    def clean_email(self) -> str:
        email = User.objects.normalize_email(self.cleaned_data.get("email") or "")
        clash = User.objects.filter(email__iexact=email)
        if self.instance.pk is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if email and clash.exists():
            raise forms.ValidationError(services.TAKEN_MESSAGES["email"], code="unique")
        return email


class UserCreationAdminForm(_EmailUniqueMixin, AdminUserCreationForm):
    class Meta(AdminUserCreationForm.Meta):
        model = User
        fields = ("username", "email", "display_name")


class UserChangeAdminForm(_EmailUniqueMixin, UserChangeForm):  # type: ignore[type-arg]
    class Meta(UserChangeForm.Meta):
        model = User
        fields = (  # type: ignore[assignment]
            "username",
            "password",
            "email",
            "display_name",
            "first_name",
            "last_name",
            "show_adult_content",
            "is_active",
            "is_staff",
            "is_superuser",
            "groups",
            "user_permissions",
        )

    def clean_username(self) -> str:
        username = str(self.cleaned_data.get("username") or "")
        clash = User.objects.filter(username__iexact=username).exclude(pk=self.instance.pk)
        if username and clash.exists():
            raise forms.ValidationError(services.TAKEN_MESSAGES["username"], code="unique")
        return username


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserChangeAdminForm
    add_form = UserCreationAdminForm
    list_display = (
        "username",
        "email",
        "display_name",
        "is_active",
        "is_staff",
        "show_adult_content",
        "created_at",
        "last_login",
    )
    list_filter = ("is_staff", "is_superuser", "is_active", "show_adult_content", "groups")
    search_fields = ("username", "email", "display_name")
    ordering = ("-created_at",)
    readonly_fields = ("id", "created_at", "date_joined", "last_login")
    fieldsets = (
        (None, {"fields": ("id", "username", "password")}),
        ("Profile", {"fields": ("email", "display_name", "first_name", "last_name", "show_adult_content")}),
        (
            "Permissions",
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        ("Dates", {"fields": ("created_at", "date_joined", "last_login")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("username", "email", "display_name", "usable_password", "password1", "password2"),
            },
        ),
    )
    actions = ("deactivate_users", "revoke_user_tokens")

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change:
            services.user_snapshots_invalidate(user_ids=[obj.pk])

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        services.user_tokens_revoke(user_ids=[obj.pk])
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        services.user_tokens_revoke(user_ids=list(queryset.values_list("pk", flat=True)))
        super().delete_queryset(request, queryset)

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        """Django's password form; a new password also revokes every API token of the user."""
        before = User.objects.filter(pk=unquote(id)).values_list("password", flat=True).first()
        response = super().user_change_password(request, id, form_url)
        after = User.objects.filter(pk=unquote(id)).values_list("password", flat=True).first()
        if request.method == "POST" and before is not None and after != before:
            revoked = services.user_tokens_revoke(user_ids=[unquote(id)])
            if revoked:
                self.message_user(request, f"{revoked} API token(s) of this user were revoked.")
        return response

    @admin.action(description="Deactivate selected users and revoke their API tokens", permissions=["change"])
    def deactivate_users(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        count = services.users_deactivate(user_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{count} user(s) deactivated.", messages.SUCCESS)

    @admin.action(description="Revoke all API tokens of selected users", permissions=["change"])
    def revoke_user_tokens(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        count = services.user_tokens_revoke(user_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{count} token(s) revoked.", messages.SUCCESS)


@admin.register(AuthToken)
class AuthTokenAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Read-only: tokens are created by logging in and only ever revoked here."""

    list_display = (
        "digest_prefix",
        "user",
        "created_at",
        "expires_at",
        "expired",
        "ip_address",
        "user_agent",
    )
    list_select_related = ("user",)
    list_filter = ("created_at", "expires_at")
    search_fields = ("^digest", "user__username", "user__email")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    fields = ("digest", "user", "created_at", "expires_at", "ip_address", "user_agent")
    readonly_fields = fields
    actions = ("revoke_tokens",)

    @admin.display(description="digest")
    def digest_prefix(self, obj: AuthToken) -> str:
        return f"{obj.digest[:12]}…"

    @admin.display(boolean=True, description="expired")
    def expired(self, obj: AuthToken) -> bool:
        return obj.is_expired

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # revoke_tokens does it and clears the cache too
        return actions

    @admin.action(description="Revoke selected tokens", permissions=["delete"])
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[AuthToken]) -> None:
        count = services.tokens_revoke(digests=list(queryset.values_list("digest", flat=True)))
        self.message_user(request, f"{count} token(s) revoked.", messages.SUCCESS)

    def delete_model(self, request: HttpRequest, obj: AuthToken) -> None:
        services.token_revoke(digest=obj.digest)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[AuthToken]) -> None:
        services.tokens_revoke(digests=list(queryset.values_list("digest", flat=True)))


# --- Notifications and transactional email: read-only records for staff ----------------------


@admin.register(EmailDelivery)
class EmailDeliveryAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("created_at", "kind", "to", "status", "attempts", "sent_at", "last_error")
    list_filter = ("status", "kind")
    search_fields = ("to", "user__username", "=id")
    list_select_related = ("user",)
    date_hierarchy = "created_at"
    fields = (
        "id",
        "user",
        "kind",
        "to",
        "subject",
        "status",
        "attempts",
        "last_error",
        "context",
        "created_at",
        "sent_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("created_at", "user", "kind", "title", "read_at")
    list_filter = ("kind",)
    search_fields = ("user__username", "title", "=id")
    list_select_related = ("user",)
    date_hierarchy = "created_at"
    fields = ("id", "user", "kind", "title", "body", "data", "event_key", "created_at", "read_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
