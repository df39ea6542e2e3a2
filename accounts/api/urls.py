"""Auth endpoints, mounted under /api/ (no trailing slashes)."""

from django.urls import path

from . import notifications, views

urlpatterns = [
    path("auth/register", views.RegisterView.as_view(), name="auth-register"),
    path("auth/login", views.LoginView.as_view(), name="auth-login"),
    path("auth/logout", views.LogoutView.as_view(), name="auth-logout"),
    path("auth/me", views.MeView.as_view(), name="auth-me"),
    # The inbox (accounts/api/notifications.py).
    path("notifications", notifications.NotificationListView.as_view(), name="notification-list"),
    path(
        "notifications/read-all",
        notifications.NotificationReadAllView.as_view(),
        name="notification-read-all",
    ),
    path(
        "notifications/<str:notification_id>/read",
        notifications.NotificationReadView.as_view(),
        name="notification-read",
    ),
]
