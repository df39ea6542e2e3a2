"""The live API's answers and refusals (no ingest needed: the hooks are called as nginx would)."""

from __future__ import annotations

from typing import Any

import pytest

from streaming.live.models import LiveSession, LiveStream
from videos.models import Video

from .test_hooks import publish

pytestmark = pytest.mark.django_db


def create(client: Any, **fields: Any) -> dict[str, Any]:
    response = client.post("/api/live", {"title": "My live", **fields}, format="json")
    assert response.status_code == 201, response.content
    return dict(response.json())


def test_create_answers_the_key_once_and_stores_only_its_digest(user_client, settings):
    body = create(user_client, privacy="unlisted", latency_mode="low", reconnect_window=0, record=False)
    assert body["id"].startswith("live_") and body["status"] == "idle" and body["session_id"] is None
    assert body["rtmp_url"] == settings.LIVE_RTMP_URL
    assert body["stream_key"].startswith("sk_live_") and len(body["stream_key"]) > 30
    assert (body["latency_mode"], body["reconnect_window"], body["record"]) == ("low", 0, False)
    stream = LiveStream.objects.get(pk=body["id"])
    assert body["stream_key"] not in stream.stream_key_digest
    assert Video.objects.get(pk=body["video_id"]).privacy == "unlisted"
    again = user_client.get(f"/api/live/{body['id']}").json()
    assert "stream_key" not in again and again["rtmp_url"] == settings.LIVE_RTMP_URL


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "title"),
        ({"title": "x", "reconnect_window": 1801}, "reconnect_window"),
        ({"title": "x", "reconnect_window": -1}, "reconnect_window"),
        ({"title": "x", "latency_mode": "ultra"}, "latency_mode"),
        ({"title": "x", "privacy": "secret"}, "privacy"),
        ({"title": "x", "stream_key": "mine"}, "stream_key"),
        ({"title": "x", "record": 0}, "record"),
        ({"title": "x", "reconnect_window": "60"}, "reconnect_window"),
        ({"title": 5}, "title"),
    ],
)
def test_create_rejects_bad_input_and_changes_nothing(user_client, payload, field):
    response = user_client.post("/api/live", payload, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error" and field in error["fields"]
    assert not LiveStream.objects.exists() and not Video.objects.exists()


def test_create_needs_a_user(api_client):
    response = api_client.post("/api/live", {"title": "x"}, format="json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_unknown_and_private_lives_are_404_to_others(user_client, other_client, api_client):
    private = create(user_client, privacy="private")
    for client in (other_client, api_client):
        for path in ("", "/stream"):
            response = client.get(f"/api/live/{private['id']}{path}")
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "not_found"
    assert user_client.get(f"/api/live/{private['id']}").status_code == 200
    assert api_client.get("/api/live/live_nope").status_code == 404


def test_others_see_no_owner_fields_and_cannot_change_it(user_client, other_client):
    body = create(user_client)
    seen = other_client.get(f"/api/live/{body['id']}").json()
    assert "rtmp_url" not in seen and "enabled" not in seen and seen["status"] == "idle"
    assert other_client.post(f"/api/live/{body['id']}/reset-key").status_code == 404
    assert other_client.post(f"/api/live/{body['id']}/end").status_code == 404
    digest = LiveStream.objects.get(pk=body["id"]).stream_key_digest
    assert LiveStream.objects.get(pk=body["id"]).stream_key_digest == digest


def test_stream_endpoint_is_409_until_live(user_client, api_client, settings):
    body = create(user_client)
    response = api_client.get(f"/api/live/{body['id']}/stream")
    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "live_not_live",
        "message": "The broadcaster has not started yet.",
        "status": "idle",
    }
    publish(api_client, settings, body["stream_key"])
    starting = api_client.get(f"/api/live/{body['id']}/stream")
    assert starting.status_code == 409 and starting.json()["error"]["status"] == "connecting"
    assert api_client.get(f"/api/live/{body['id']}").json()["status"] == "connecting"


def test_live_stream_answer_has_the_vod_shape_and_caps_renditions(user_client, api_client, settings):
    body = create(user_client)
    session_id = publish(api_client, settings, body["stream_key"])
    ready = api_client.post(
        f"/internal/live/hooks/sessions/{session_id}/ready?secret={settings.LIVE_HOOK_SECRET}",
        {
            "renditions": [
                {"name": "src", "width": 1920, "height": 1080, "bandwidth": 6000000, "codecs": "avc1.640028"},
                {"name": "480p", "width": 854, "height": 480, "bandwidth": 1100000, "codecs": "avc1.64001f"},
            ]
        },
        format="json",
    )
    assert ready.status_code == 200, ready.content
    answer = api_client.get(f"/api/live/{body['id']}/stream?bandwidth=9000000")
    assert answer.status_code == 200
    stream = answer.json()
    vod_keys = {
        "video_id",
        "duration",
        "master_playlist_url",
        "renditions",
        "recommended_rendition",
        "max_resolution",
        "expires_at",
        "poster_url",
        "thumbnails",
        "thumbnail_interval",
        "delivery",
    }
    assert vod_keys | {"latency_mode", "status", "session_id"} == set(stream)
    # An anonymous viewer's plan allows 480p: the 1080p source is not offered.
    assert [r["quality"] for r in stream["renditions"]] == [480]
    assert stream["recommended_rendition"]["quality"] == 480
    master = api_client.get(stream["master_playlist_url"].replace("http://testserver", ""))
    assert (
        master.status_code == 200 and b"480p/index.m3u8" in master.content and b"src/" not in master.content
    )
    above = (
        stream["master_playlist_url"]
        .replace("master.m3u8", "src/index.m3u8")
        .replace("http://testserver", "")
    )
    assert api_client.get(above).status_code == 403
    tampered = stream["master_playlist_url"].replace("http://testserver", "").replace(".480.", ".1080.")
    assert api_client.get(tampered).status_code == 403


def test_a_live_link_is_revoked_when_the_broadcast_turns_private(user_client, api_client, settings):
    body = create(user_client)
    session_id = publish(api_client, settings, body["stream_key"])
    ready = api_client.post(
        f"/internal/live/hooks/sessions/{session_id}/ready?secret={settings.LIVE_HOOK_SECRET}",
        {
            "renditions": [
                {"name": "480p", "width": 854, "height": 480, "bandwidth": 1100000, "codecs": "avc1.64001f"}
            ]
        },
        format="json",
    )
    assert ready.status_code == 200, ready.content
    master = api_client.get(f"/api/live/{body['id']}/stream").json()["master_playlist_url"]
    master = master.replace("http://testserver", "")
    assert api_client.get(master).status_code == 200
    changed = user_client.patch(f"/api/videos/{body['video_id']}", {"privacy": "private"}, format="json")
    assert changed.status_code == 200, changed.content
    revoked = api_client.get(master)
    assert revoked.status_code == 403 and b"revoked" in revoked.content


def test_end_and_reset_key(user_client, api_client, settings):
    body = create(user_client)
    assert user_client.post(f"/api/live/{body['id']}/end").status_code == 409  # nothing to end
    publish(api_client, settings, body["stream_key"])
    ended = user_client.post(f"/api/live/{body['id']}/end")
    assert ended.status_code == 200 and ended.json()["status"] == "ended"
    again = user_client.post(f"/api/live/{body['id']}/end")
    assert again.status_code == 409 and again.json()["error"]["code"] == "live_not_broadcasting"
    reset = user_client.post(f"/api/live/{body['id']}/reset-key")
    assert reset.status_code == 200
    new_key = reset.json()["stream_key"]
    assert new_key != body["stream_key"]
    assert publish(api_client, settings, body["stream_key"], expect=403) is None
    assert publish(api_client, settings, new_key) is not None


def test_users_live_lists_visible_streams(user, user_client, other_client):
    public = create(user_client)
    create(user_client, privacy="private")
    body = other_client.get(f"/api/users/{user.pk}/live").json()
    assert [item["id"] for item in body["data"]] == [public["id"]]
    assert len(user_client.get(f"/api/users/{user.pk}/live").json()["data"]) == 2
    assert other_client.get("/api/users/usr_nobody/live").status_code == 404


def test_watch_page_for_a_live(user_client, client):
    body = create(user_client)
    page = client.get(f"/watch/live/{body['id']}")
    assert page.status_code == 200 and f"/api/live/{body['id']}/stream".encode() in page.content
    assert client.get("/watch/live/live_nope").status_code == 404
    assert not LiveSession.objects.exists()


def test_metrics_count_broadcasts_under_way(user_client, api_client, client, settings):
    body = create(user_client)
    publish(api_client, settings, body["stream_key"])
    text = client.get("/metrics").content.decode()
    assert 'live_sessions{status="connecting"} 1.0' in text
    assert 'live_sessions{status="live"} 0.0' in text


def test_the_watch_page_of_a_lives_video_sends_viewers_to_the_live_player(user_client, client):
    body = create(user_client)
    page = client.get(f"/watch/{body['video_id']}")
    assert page.status_code == 302 and page["Location"] == f"/watch/live/{body['id']}"
    assert client.get(page["Location"]).status_code == 200
