"""A broadcast under way shows in the feeds marked ``is_live``, and the mark (through the cache
tiers and the rendered pages) follows the broadcast as it starts, waits for a reconnect and ends."""

from __future__ import annotations

from typing import Any

import pytest

from streaming.live import services
from tests.cache.conftest import requires_redis
from tests.factories import VideoFactory
from videos.models import Video

from .test_hooks import done, publish

pytestmark = [requires_redis, pytest.mark.django_db(transaction=True)]

RENDITIONS = [{"name": "src", "width": 640, "height": 360, "bandwidth": 800000, "codecs": "avc1.64001e"}]


def ready(client: Any, settings: Any, session_id: str) -> None:
    response = client.post(
        f"/internal/live/hooks/sessions/{session_id}/ready?secret={settings.LIVE_HOOK_SECRET}",
        {"renditions": RENDITIONS},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content


def marks(client: Any, path: str) -> dict[str, bool]:
    """Video id -> is_live, for every entry of a feed page."""
    response = client.get(path)
    assert response.status_code == 200, response.content
    return {entry["id"]: entry["is_live"] for entry in response.json()["data"]}


def test_a_broadcast_is_in_the_feeds_marked_live_while_watchable(client, api_client, settings, user):
    stream, key = services.live_stream_create(owner=user, title="On air", reconnect_window=60, record=False)
    older = VideoFactory(owner=user, status=Video.Status.READY)  # newer than the stream's video
    video_id = stream.video_id
    feeds = ["/api/videos", f"/api/users/{user.pk}/videos", "/api/videos?fields=id,is_live"]
    for path in feeds:  # warm: the pages are cached before the broadcast starts
        assert marks(api_client, path) == {older.pk: False}
        assert marks(api_client, path) == {older.pk: False}

    session_id = publish(client, settings, key)
    assert video_id not in marks(api_client, "/api/videos")  # connecting: nothing to watch yet
    ready(client, settings, session_id)
    for path in feeds:  # listed from when it went on air: first
        assert list(marks(api_client, path).items()) == [(video_id, True), (older.pk, False)]
    assert api_client.get(f"/api/videos/{video_id}").json()["is_live"] is True
    assert b'class="live">LIVE' in api_client.get("/").content  # the home page marks it too

    done(client, settings, key)  # the publisher dropped: viewers keep watching while it may return
    assert marks(api_client, "/api/videos")[video_id] is True

    services.live_session_end(session_id=session_id, reason="owner")
    for path in feeds:  # not recorded: no replay, so the video leaves the feeds
        assert marks(api_client, path) == {older.pk: False}
    assert api_client.get(f"/api/videos/{video_id}").json()["is_live"] is False
    assert b'class="live">LIVE' not in api_client.get("/").content


def test_a_private_broadcast_stays_out_of_others_feeds(client, api_client, settings, user, user_client):
    stream, key = services.live_stream_create(owner=user, title="Just me", privacy="private", record=False)
    ready(client, settings, publish(client, settings, key))
    assert stream.video_id not in marks(api_client, "/api/videos")
    assert stream.video_id not in marks(api_client, f"/api/users/{user.pk}/videos")
    assert marks(user_client, f"/api/users/{user.pk}/videos")[stream.video_id] is True


def test_deleting_a_stream_on_air_takes_its_video_off_the_air(client, api_client, settings, user):
    stream, key = services.live_stream_create(owner=user, title="Gone", record=False)
    ready(client, settings, publish(client, settings, key))
    assert marks(api_client, "/api/videos") == {stream.video_id: True}
    stream.delete()  # as the admin's delete does (the session goes with it)
    assert marks(api_client, "/api/videos") == {}
    assert Video.objects.get(pk=stream.video_id).is_live is False
