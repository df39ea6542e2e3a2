from django.urls import path

from . import views

urlpatterns = [
    path("videos", views.VideoListView.as_view(), name="video-list"),
    path("videos/create", views.VideoCreateView.as_view(), name="video-create"),
    path("videos/<str:video_id>", views.VideoDetailView.as_view(), name="video-detail"),
    path("users/<str:user_id>/videos", views.UserVideoListView.as_view(), name="user-video-list"),
]
