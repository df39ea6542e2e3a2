"""A broadcast's state changes reach the owner's webhook endpoints as live.* events, in order,
showing the live stream as the API shows it to its owner (never the stream key)."""

from __future__ import annotations

from typing import Any

import pytest

from streaming.live import services as live_services
from tests.live.conftest import HOOK_SECRET
from tests.webhooks.conftest import run_due
from tests.webhooks.receiver import Receiver

pytestmark = pytest.mark.django_db


def _hook(client: Any, name: str, key: str) -> Any:
    call = {"publish": "publish", "publish-done": "publish_done"}[name]
    return client.post(
        f"/internal/live/hooks/{name}?secret={HOOK_SECRET}&origin=http://127.0.0.1:1/live",
        {"call": call, "app": "live", "name": key, "clientid": "1", "addr": "1.2.3.4"},
    )


def test_a_broadcast_sends_connected_active_disconnected_ended_to_the_owner_only(
    receiver: Receiver,
    endpoint_for: Any,
    user: Any,
    other_user: Any,
    client: Any,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.LIVE_HOOK_SECRET = HOOK_SECRET
    endpoint_for(user, "/mine", events=["live.connected", "live.active", "live.disconnected", "live.ended"])
    endpoint_for(other_user, "/theirs")
    stream, key = live_services.live_stream_create(owner=user, title="Launch day")

    with django_capture_on_commit_callbacks(execute=True):
        assert _hook(client, "publish", key).status_code == 302
    session_id = stream.__class__.objects.get(pk=stream.pk).session_id
    with django_capture_on_commit_callbacks(execute=True):
        live_services.live_session_ready(
            session_id=session_id,
            renditions=[
                {"name": "src", "width": 640, "height": 360, "bandwidth": 800000, "codecs": "avc1.64001e"}
            ],
        )
    with django_capture_on_commit_callbacks(execute=True):
        _hook(client, "publish-done", key)
    with django_capture_on_commit_callbacks(execute=True):
        live_services.live_session_end(session_id=session_id, reason="test")
    run_due()

    received = receiver.received()
    assert [r.path for r in received] == ["/mine"] * 4
    assert [r.payload["type"] for r in received] == [
        "live.connected",
        "live.active",
        "live.disconnected",
        "live.ended",
    ]
    first, last = received[0].payload["data"], received[-1].payload["data"]
    assert first["id"] == stream.pk and first["session_id"] == session_id
    assert first["title"] == "Launch day" and last["status"] == "ended"
    assert all(key not in r.body.decode() for r in received)
