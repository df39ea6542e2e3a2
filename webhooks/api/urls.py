"""Included under /api/ (no trailing slashes)."""

from django.urls import URLPattern, path

from . import views

urlpatterns: list[URLPattern] = [
    path("webhooks", views.EndpointListView.as_view(), name="webhooks"),
    path("webhooks/event-types", views.EventTypeListView.as_view(), name="webhooks-event-types"),
    path("webhooks/<str:endpoint_id>", views.EndpointDetailView.as_view(), name="webhooks-detail"),
    path(
        "webhooks/<str:endpoint_id>/roll-secret", views.RollSecretView.as_view(), name="webhooks-roll-secret"
    ),
    path(
        "webhooks/<str:endpoint_id>/deliveries", views.DeliveryListView.as_view(), name="webhooks-deliveries"
    ),
    path(
        "webhooks/<str:endpoint_id>/deliveries/<str:delivery_id>/redeliver",
        views.RedeliverView.as_view(),
        name="webhooks-redeliver",
    ),
]
