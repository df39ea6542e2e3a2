"""Included under /api/ (no trailing slashes)."""

from django.urls import URLPattern, path

from . import views

urlpatterns: list[URLPattern] = [
    path("subscriptions", views.SubscriptionCreateView.as_view(), name="subscriptions-create"),
    path("subscriptions/plans", views.PlanListView.as_view(), name="subscriptions-plans"),
    path("subscriptions/me", views.CurrentSubscriptionView.as_view(), name="subscriptions-me"),
    path("subscriptions/me/cancel", views.CancelSubscriptionView.as_view(), name="subscriptions-me-cancel"),
]
