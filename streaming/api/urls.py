from django.urls import path

from . import analytics, playback, views

urlpatterns = [
    path("videos/<str:video_id>/stream", views.VideoStreamView.as_view(), name="video-stream"),
    path("videos/<str:video_id>/analytics", analytics.VideoAnalyticsView.as_view(), name="video-analytics"),
    path("playback/events", playback.PlaybackEventsView.as_view(), name="playback-events"),
]
