from django.urls import path

from . import discovery, views

urlpatterns = [
    path("videos", views.VideoListView.as_view(), name="video-list"),
    path("videos/create", views.VideoCreateView.as_view(), name="video-create"),
    path("videos/<str:video_id>", views.VideoDetailView.as_view(), name="video-detail"),
    path("videos/<str:video_id>/upload", views.VideoUploadView.as_view(), name="video-upload"),
    path(
        "videos/<str:video_id>/upload/complete",
        views.VideoUploadCompleteView.as_view(),
        name="video-upload-complete",
    ),
    path("videos/<str:video_id>/media", views.VideoMediaView.as_view(), name="video-media"),
    path("users/<str:user_id>/videos", views.UserVideoListView.as_view(), name="user-video-list"),
    # Search and related videos (videos/api/discovery.py).
    path("search", discovery.SearchView.as_view(), name="search"),
    path(
        "videos/<str:video_id>/recommendations",
        discovery.RecommendationsView.as_view(),
        name="video-recommendations",
    ),
]
