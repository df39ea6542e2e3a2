"""The ingest's hooks as nginx-rtmp calls them (form posts, the secret in the query string):
authorisation, one publisher per stream, the reconnect window, the sweeper, the plan limit."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from streaming.live import services
from streaming.live.models import LiveSession, LiveStream
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ORIGIN = "http://127.0.0.1:1/live"


def hook(client: Any, settings: Any, name: str, data: dict[str, str], secret: str | None = None) -> Any:
    query = f"secret={settings.LIVE_HOOK_SECRET if secret is None else secret}&origin={ORIGIN}"
    return client.post(f"/internal/live/hooks/{name}?{query}", data)


def publish(client: Any, settings: Any, key: str, clientid: str = "1", expect: int = 302) -> str | None:
    response = hook(
        client,
        settings,
        "publish",
        {"call": "publish", "app": "live", "name": key, "clientid": clientid, "addr": "1.2.3.4"},
    )
    assert response.status_code == expect, response.content
    return response["Location"] if expect == 302 else None


def done(client: Any, settings: Any, key: str, clientid: str = "1") -> Any:
    return hook(
        client,
        settings,
        "publish-done",
        {"call": "publish_done", "app": "live", "name": key, "clientid": clientid},
    )


def update(client: Any, settings: Any, key: str, clientid: str = "1") -> Any:
    return hook(
        client,
        settings,
        "update",
        {"call": "update_publish", "app": "live", "name": key, "clientid": clientid},
    )


def new_stream(user: Any, **fields: Any) -> tuple[LiveStream, str]:
    return services.live_stream_create(owner=user, title="Live", **fields)


def test_a_hook_without_the_secret_is_refused_logged_and_changes_nothing(client, settings, user, caplog):
    _stream, key = new_stream(user)
    with caplog.at_level(logging.WARNING, logger="streaming.live.views"):
        for secret in ("", "wrong"):
            response = hook(
                client, settings, "publish", {"call": "publish", "app": "live", "name": key}, secret
            )
            assert response.status_code == 403
    assert "bad secret" in caplog.text
    assert not LiveSession.objects.exists()
    settings.LIVE_HOOK_SECRET = ""  # unset: everything is refused
    assert (
        hook(client, settings, "publish", {"call": "publish", "app": "live", "name": key}, "").status_code
        == 403
    )


def test_publish_renames_to_the_session_and_refuses_a_second_publisher(client, settings, user):
    stream, key = new_stream(user)
    assert publish(client, settings, "sk_live_unknown", expect=403) is None
    session_id = publish(client, settings, key)
    session = LiveSession.objects.get(pk=session_id)
    assert session.stream_id == stream.pk and session.status == "connecting" and key not in session_id
    assert (session.origin_url, session.client_id, session.client_addr) == (ORIGIN, "1", "1.2.3.4")
    publish(client, settings, key, clientid="2", expect=403)
    # The refused connection's publish_done must not touch the accepted one's session.
    done(client, settings, key, clientid="2")
    assert LiveSession.objects.get(pk=session_id).status == "connecting"
    assert update(client, settings, key).status_code == 200


def test_reconnect_within_the_window_keeps_the_session_and_the_window_ends_it(client, settings, user):
    stream, key = new_stream(user, reconnect_window=60)
    session_id = publish(client, settings, key)
    done(client, settings, key)
    assert LiveSession.objects.get(pk=session_id).status == "reconnecting"
    assert publish(client, settings, key, clientid="7") == session_id
    session = LiveSession.objects.get(pk=session_id)
    assert (session.connections, session.publishing) == (2, True)
    # The first disconnection's window job finds a publisher that came back: no change.
    assert services.live_session_expire(session_id=session_id, connections=1) is False
    done(client, settings, key, clientid="7")
    assert services.live_session_expire(session_id=session_id, connections=2) is True
    session = LiveSession.objects.get(pk=session_id)
    assert (session.status, session.end_reason, session.replay) == ("ended", "reconnect_window", "pending")
    stream.refresh_from_db()
    assert stream.video_id != session.video_id  # the next broadcast gets a new video
    # A new publish after the end is a new session.
    assert publish(client, settings, key) != session_id


def test_no_window_ends_at_once(client, settings, user):
    _stream, key = new_stream(user, reconnect_window=0, record=False)
    session_id = publish(client, settings, key)
    done(client, settings, key)
    session = LiveSession.objects.get(pk=session_id)
    assert (session.status, session.end_reason, session.replay) == ("ended", "publisher_left", "none")


def test_disabled_streams_and_rotated_keys_drop_the_publisher(client, settings, user):
    stream, key = new_stream(user)
    session_id = publish(client, settings, key)
    new_key = services.live_stream_reset_key(stream=stream)
    assert update(client, settings, key).status_code == 403  # the old key's publisher is dropped
    done(client, settings, key)
    assert publish(client, settings, new_key) == session_id  # back with the new key, same broadcast
    services.live_stream_set_enabled(stream=stream, enabled=False)
    assert LiveSession.objects.get(pk=session_id).status == "ended"
    assert update(client, settings, new_key).status_code == 403
    publish(client, settings, new_key, expect=403)


def test_plan_limit_on_broadcasts_at_once(client, settings, user):
    settings.LIVE_CONCURRENT_LIMITS = "free:1,premium:3"
    _first, first_key = new_stream(user)
    _second, second_key = new_stream(user)
    publish(client, settings, first_key)
    publish(client, settings, second_key, expect=403)
    assert LiveSession.objects.count() == 1


def test_sweeper_ends_broadcasts_whose_ingest_went_silent(client, settings, user):
    _stream, key = new_stream(user)
    session_id = publish(client, settings, key)
    _other, other_key = new_stream(UserFactory())
    fresh_id = publish(client, settings, other_key)
    LiveSession.objects.filter(pk=session_id).update(heartbeat_at=timezone.now() - timedelta(seconds=31))
    assert services.live_sessions_sweep() == 1
    assert LiveSession.objects.get(pk=session_id).end_reason == "stale"
    assert LiveSession.objects.get(pk=fresh_id).status == "connecting"


def test_ready_and_recordings_refuse_bad_input(client, settings, user):
    _stream, key = new_stream(user)
    session_id = publish(client, settings, key)
    base = f"/internal/live/hooks/sessions/{session_id}"
    secret = f"secret={settings.LIVE_HOOK_SECRET}"
    bad = client.post(
        f"{base}/ready?{secret}", {"renditions": [{"name": "../x"}]}, content_type="application/json"
    )
    assert bad.status_code == 400
    assert client.post(f"{base}/ready?{secret}", "nope", content_type="application/json").status_code == 400
    assert (
        client.post(
            f"{base}/recordings?{secret}&part=../../etc.flv", b"x", content_type="video/x-flv"
        ).status_code
        == 400
    )
    assert client.get(f"/internal/live/hooks/sessions/ls_nope/config?{secret}").status_code == 400
    config = client.get(f"{base}/config?{secret}").json()
    assert config["segment_seconds"] == 2 and config["rungs"] == []
    assert LiveSession.objects.get(pk=session_id).status == "connecting"
