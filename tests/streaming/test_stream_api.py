"""GET /api/videos/{id}/stream and the signed media it hands out."""

from __future__ import annotations

import time
from urllib.parse import urlparse

import pytest

from streaming import signing
from streaming.models import MediaFile
from tests.conftest import login_client
from tests.factories import PlanFactory, SubscriptionFactory, UserFactory, VideoFactory
from tests.streaming.media import master_variants
from videos.models import Video

pytestmark = pytest.mark.django_db


def _path(url: str) -> str:
    return urlparse(url).path


def _subscriber(max_resolution: int):
    user = UserFactory()
    SubscriptionFactory(user=user, plan=PlanFactory(max_resolution=max_resolution))
    return user, login_client(user)


def test_ready_video_answers_signed_urls_and_the_free_plan_ladder(api_client, ready_video):
    video = ready_video()
    response = api_client.get(f"/api/videos/{video.pk}/stream")
    assert response.status_code == 200, response.content
    body = response.json()
    assert response["Cache-Control"] == "private, no-store"
    # Anonymous viewers have the free plan: up to 480p.
    assert body["max_resolution"] == 480
    assert [r["quality"] for r in body["renditions"]] == [480, 360]
    assert body["renditions"][0] == {
        "quality": 480,
        "width": 854,
        "height": 480,
        "bandwidth": 1_000_000,
        "codecs": body["renditions"][0]["codecs"],
        "url": body["renditions"][0]["url"],
    }
    assert body["master_playlist_url"].startswith("http://testserver/media/s/")
    assert body["expires_at"] and body["poster_url"] and body["thumbnails"]
    master = api_client.get(_path(body["master_playlist_url"]))
    assert master.status_code == 200
    assert master["Content-Type"] == "application/vnd.apple.mpegurl"
    variants = master_variants(master.content.decode())
    assert [v["RESOLUTION"] for v in variants] == ["854x480", "640x360"]
    assert all(v["BANDWIDTH"] and v["CODECS"] for v in variants)


def test_a_720p_plan_gets_a_master_without_1080p_and_no_url_to_it(ready_video):
    video = ready_video()
    _, client = _subscriber(720)
    body = client.get(f"/api/videos/{video.pk}/stream").json()
    assert [r["quality"] for r in body["renditions"]] == [720, 480, 360]
    assert "1080" not in str(body)
    master = client.get(_path(body["master_playlist_url"])).content.decode()
    assert [v["URI"] for v in master_variants(master)] == [
        "720p/index.m3u8",
        "480p/index.m3u8",
        "360p/index.m3u8",
    ]
    assert "1080" not in master
    # Guessing the 1080p playlist with this token is refused.
    root = body["master_playlist_url"].rsplit("/", 1)[0]
    assert client.get(_path(f"{root}/1080p/index.m3u8")).status_code == 403
    assert client.get(_path(f"{root}/1080p/seg_00000.ts")).status_code == 403
    assert client.get(_path(f"{root}/720p/index.m3u8")).status_code == 200


def test_a_1080p_plan_gets_the_full_ladder(ready_video):
    video = ready_video()
    _, client = _subscriber(1080)
    body = client.get(f"/api/videos/{video.pk}/stream").json()
    assert [r["quality"] for r in body["renditions"]] == [1080, 720, 480, 360]
    master = client.get(_path(body["master_playlist_url"])).content.decode()
    assert master_variants(master)[0]["RESOLUTION"] == "1920x1080"


@pytest.mark.parametrize(
    ("bandwidth", "expected"),
    [
        (10_000_000, 1080),
        (5_000_001, 1080),
        (5_000_000, 720),
        (2_000_000, 720),
        (1_999_999, 480),
        (1_000_000, 480),
        (999_999, 360),
        (0, 360),
    ],
)
def test_recommendation_follows_the_bandwidth_rule(ready_video, bandwidth, expected):
    video = ready_video()
    _, client = _subscriber(1080)
    body = client.get(f"/api/videos/{video.pk}/stream?bandwidth={bandwidth}").json()
    assert body["recommended_rendition"]["quality"] == expected


def test_recommendation_never_exceeds_the_plan(api_client, ready_video):
    video = ready_video()
    body = api_client.get(f"/api/videos/{video.pk}/stream?bandwidth=50000000").json()
    assert body["recommended_rendition"]["quality"] == 480


def test_recommendation_never_exceeds_what_exists(ready_video, clip):
    # A 480p-only ladder: a fast client still gets 480p.
    video = ready_video()
    MediaFile.objects.get(video=video).renditions.filter(quality__gt=480).delete()
    _, client = _subscriber(1080)
    body = client.get(f"/api/videos/{video.pk}/stream?bandwidth=50000000").json()
    assert body["recommended_rendition"]["quality"] == 480


def test_downlink_client_hint_is_used_without_bandwidth(ready_video):
    video = ready_video()
    _, client = _subscriber(1080)
    body = client.get(f"/api/videos/{video.pk}/stream", HTTP_DOWNLINK="2.5").json()
    assert body["recommended_rendition"]["quality"] == 720
    body = client.get(f"/api/videos/{video.pk}/stream", HTTP_DOWNLINK="0.4").json()
    assert body["recommended_rendition"]["quality"] == 360
    # The query parameter wins over the hint.
    body = client.get(f"/api/videos/{video.pk}/stream?bandwidth=9000000", HTTP_DOWNLINK="0.4").json()
    assert body["recommended_rendition"]["quality"] == 1080


@pytest.mark.parametrize("value", ["fast", "-1", "1.5", "", "9" * 20])
def test_bad_bandwidth_is_a_400(api_client, ready_video, value):
    video = ready_video()
    response = api_client.get(f"/api/videos/{video.pk}/stream?bandwidth={value}")
    assert response.status_code == 400
    assert "bandwidth" in response.json()["error"]["fields"]


def test_premium_video_needs_an_active_subscription(ready_video, user_client, user):
    video = ready_video(is_premium=True)
    response = user_client.get(f"/api/videos/{video.pk}/stream")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "subscription_required"
    _, subscriber = _subscriber(720)
    assert subscriber.get(f"/api/videos/{video.pk}/stream").status_code == 200


def test_owner_may_watch_their_own_premium_video(ready_video, user, user_client):
    video = ready_video(is_premium=True, owner=user)
    assert user_client.get(f"/api/videos/{video.pk}/stream").status_code == 200


@pytest.mark.parametrize("status", ["awaiting_upload", "uploaded", "processing", "failed"])
def test_not_ready_is_409_with_status_and_progress(api_client, ready_video, status):
    video = ready_video()
    MediaFile.objects.filter(video=video).update(status=status, progress=42)
    response = api_client.get(f"/api/videos/{video.pk}/stream")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "video_not_ready"
    assert (error["status"], error["progress"]) == (status, 42)


def test_video_without_media_is_409(api_client):
    video = VideoFactory()
    response = api_client.get(f"/api/videos/{video.pk}/stream")
    assert response.status_code == 409
    assert response.json()["error"]["status"] == "awaiting_upload"


def test_video_not_visible_is_404(api_client, other_client, ready_video, user):
    video = ready_video(owner=user, privacy=Video.Privacy.PRIVATE)
    for client in (api_client, other_client):
        response = client.get(f"/api/videos/{video.pk}/stream")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    assert api_client.get("/api/videos/vid_nope/stream").status_code == 404


def test_tampered_or_expired_links_are_403(api_client, ready_video):
    video = ready_video()
    body = api_client.get(f"/api/videos/{video.pk}/stream").json()
    url = _path(body["master_playlist_url"])
    token = url.split("/")[3]
    video_id, run, cap, expires, epoch, signature = token.split(".")
    raised_cap = url.replace(token, f"{video_id}.{run}.1080.{expires}.{epoch}.{signature}")
    assert api_client.get(raised_cap).status_code == 403
    longer = url.replace(token, f"{video_id}.{run}.{cap}.{int(expires) + 3600}.{epoch}.{signature}")
    assert api_client.get(longer).status_code == 403
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    assert (
        api_client.get(url.replace(token, f"{video_id}.{run}.{cap}.{expires}.{epoch}.{flipped}")).status_code
        == 403
    )
    assert api_client.get(url.replace(token, "garbage")).status_code == 403
    expired = signing.token_for(
        signing.StreamGrant(video_id=video_id, run_token=run, cap=int(cap), expires=int(time.time()) - 1)
    )
    assert api_client.get(url.replace(token, expired)).status_code == 403
    assert api_client.get(url).status_code == 200


def test_viewers_asking_within_one_bucket_share_the_same_urls(api_client, user_client, ready_video, settings):
    """No viewer in a token and its expiry rounded to STREAM_URL_BUCKET: one cache key per file."""
    video = ready_video()
    first = api_client.get(f"/api/videos/{video.pk}/stream").json()
    second = user_client.get(f"/api/videos/{video.pk}/stream").json()  # a signed-in free viewer
    assert first["master_playlist_url"] == second["master_playlist_url"]
    assert [r["url"] for r in first["renditions"]] == [r["url"] for r in second["renditions"]]
    expires = int(first["master_playlist_url"].split("/media/s/", 1)[1].split(".")[3])
    assert expires % settings.STREAM_URL_BUCKET == 0
    assert expires - time.time() >= settings.STREAM_URL_TTL  # never shorter than the TTL


def test_segments_are_served_with_range_and_immutable_cache(api_client, ready_video, shared_ladder):
    video = ready_video()
    body = api_client.get(f"/api/videos/{video.pk}/stream").json()
    rendition = body["renditions"][-1]
    playlist = api_client.get(_path(rendition["url"]))
    assert playlist.status_code == 200
    assert playlist["Cache-Control"] == "public, max-age=60"
    segment_name = next(
        line for line in playlist.content.decode().splitlines() if line and not line.startswith("#")
    )
    segment_url = _path(rendition["url"]).rsplit("/", 1)[0] + "/" + segment_name
    on_disk = (shared_ladder["dir"] / "360p" / segment_name).read_bytes()

    whole = api_client.get(segment_url)
    assert whole.status_code == 200
    # Shared caches may keep it (bounded: a revocation reaches them within 10 minutes); the
    # browser until the token expires.
    directives = dict(item.strip().partition("=")[::2] for item in whole["Cache-Control"].split(","))
    assert set(directives) == {"public", "max-age", "s-maxage", "immutable"}
    assert int(directives["s-maxage"]) == 600
    assert 3600 <= int(directives["max-age"]) <= 3600 + 900 + 3  # the TTL, its bucket, the duration
    assert "Cookie" not in whole.get("Vary", "") and not whole.cookies
    assert whole["Content-Type"] == "video/mp2t"
    assert whole["Accept-Ranges"] == "bytes"
    assert b"".join(whole.streaming_content) == on_disk

    part = api_client.get(segment_url, HTTP_RANGE="bytes=188-375")
    assert part.status_code == 206
    assert part["Content-Range"] == f"bytes 188-375/{len(on_disk)}"
    assert b"".join(part.streaming_content) == on_disk[188:376]

    tail = api_client.get(segment_url, HTTP_RANGE="bytes=-100")
    assert tail.status_code == 206 and b"".join(tail.streaming_content) == on_disk[-100:]
    open_ended = api_client.get(segment_url, HTTP_RANGE=f"bytes={len(on_disk) - 10}-")
    assert b"".join(open_ended.streaming_content) == on_disk[-10:]

    beyond = api_client.get(segment_url, HTTP_RANGE=f"bytes={len(on_disk)}-")
    assert beyond.status_code == 416
    assert beyond["Content-Range"] == f"bytes */{len(on_disk)}"

    head = api_client.head(segment_url)
    assert head.status_code == 200 and head["Content-Length"] == str(len(on_disk))


def test_poster_and_unknown_paths(api_client, ready_video):
    video = ready_video()
    body = api_client.get(f"/api/videos/{video.pk}/stream").json()
    poster = api_client.get(_path(body["poster_url"]))
    assert poster.status_code == 200 and poster["Content-Type"] == "image/jpeg"
    root = _path(body["master_playlist_url"]).rsplit("/", 1)[0]
    assert api_client.get(f"{root}/../../secret").status_code == 404
    assert api_client.get(f"{root}/master_1080.m3u8").status_code == 404
    assert api_client.get(f"{root}/360p/seg_99999.ts").status_code == 404


def test_stream_endpoint_query_count_is_small(api_client, ready_video, django_assert_max_num_queries):
    video = ready_video()
    api_client.get(f"/api/videos/{video.pk}/stream")  # warm up
    with django_assert_max_num_queries(5):
        assert api_client.get(f"/api/videos/{video.pk}/stream").status_code == 200
