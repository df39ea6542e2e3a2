"""Admin: staff see live streams and sessions (never a key or its digest) and can disable a
stream, which ends its broadcast."""

from __future__ import annotations

import pytest

from streaming.live import services
from streaming.live.models import LiveSession

from .test_hooks import publish

pytestmark = pytest.mark.django_db


def test_staff_see_streams_and_sessions_and_disable_a_stream(client, staff_user, user, settings):
    stream, key = services.live_stream_create(owner=user, title="Admin live")
    session_id = publish(client, settings, key)
    client.force_login(staff_user)
    for url in (
        "/admin/live/livestream/",
        f"/admin/live/livestream/{stream.pk}/change/",
        "/admin/live/livesession/",
        f"/admin/live/livesession/{session_id}/change/",
    ):
        page = client.get(url)
        assert page.status_code == 200, url
        text = page.content.decode()
        assert key not in text and stream.stream_key_digest not in text, url
    response = client.post(
        "/admin/live/livestream/", {"action": "disable_streams", "_selected_action": [stream.pk]}, follow=True
    )
    assert response.status_code == 200
    stream.refresh_from_db()
    assert stream.enabled is False
    session = LiveSession.objects.get(pk=session_id)
    assert (session.status, session.end_reason) == ("ended", "disabled")
