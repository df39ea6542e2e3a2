from django.urls import path

from . import playback, views

urlpatterns = [
    path("videos/<str:video_id>/stream", views.VideoStreamView.as_view(), name="video-stream"),
    path("playback/events", playback.PlaybackEventsView.as_view(), name="playback-events"),
]
