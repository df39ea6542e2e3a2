from django.urls import path

from . import views

urlpatterns = [
    path("videos/<str:video_id>/stream", views.VideoStreamView.as_view(), name="video-stream"),
]
