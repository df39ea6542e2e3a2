from django.urls import path

from . import views

urlpatterns = [
    path("live", views.LiveCreateView.as_view(), name="live-create"),
    path("live/<str:live_id>", views.LiveDetailView.as_view(), name="live-detail"),
    path("live/<str:live_id>/stream", views.LiveStreamView.as_view(), name="live-stream"),
    path("live/<str:live_id>/end", views.LiveEndView.as_view(), name="live-end"),
    path("live/<str:live_id>/reset-key", views.LiveResetKeyView.as_view(), name="live-reset-key"),
    path("users/<str:user_id>/live", views.UserLiveListView.as_view(), name="user-live-list"),
]
