"""The stream endpoint with the cache tiers on: a warm answer runs no SQL, and every change to the
media (a finished re-run, a failure, staff actions, the video's deletion) shows at once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings as django_settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from streaming import selectors, services, storage
from streaming.api.serializers import StreamSerializer, stream_representation
from streaming.models import MediaFile, Rendition
from subscriptions.selectors import Entitlement, viewer_entitlement
from tests.cache.conftest import live, requires_redis, wait_for
from tests.conftest import login_client
from tests.factories import PlanFactory, SubscriptionFactory, UserFactory, VideoFactory
from videoplatform.cache.core import Tiers
from videoplatform.cache.kinds import MEDIA
from videos import services as video_services
from videos.models import Video

pytestmark = [requires_redis, pytest.mark.django_db(transaction=True)]


def stream(client: Any, video: Video, **extra: Any) -> Any:
    return client.get(f"/api/videos/{video.pk}/stream", **extra)


def _path(url: str) -> str:
    return urlparse(url).path


def _subscriber(max_resolution: int) -> Any:
    user = UserFactory()
    SubscriptionFactory(user=user, plan=PlanFactory(max_resolution=max_resolution))
    return login_client(user)


def _media(video: Video) -> MediaFile:
    return MediaFile.objects.get(video_id=video.pk)


def test_a_warm_stream_answer_runs_no_query(api_client: Any, ready_video: Any, counter_redis: Any) -> None:
    video = ready_video()
    subscriber = _subscriber(1080)
    for client in (api_client, subscriber):
        assert stream(client, video).status_code == 200  # cold: video, ladder, entitlement, token
    with CaptureQueriesContext(connection) as queries:
        anonymous = stream(api_client, video)
        full = stream(subscriber, video, HTTP_DOWNLINK="10")
        # Another anonymous viewer: a counted play (in Redis), still no query.
        newcomer = stream(api_client, video, HTTP_USER_AGENT="another player")
    assert [q["sql"] for q in queries.captured_queries] == []
    assert [r["quality"] for r in anonymous.json()["renditions"]] == [480, 360]
    assert [r["quality"] for r in full.json()["renditions"]] == [1080, 720, 480, 360]
    assert full.json()["recommended_rendition"]["quality"] == 1080
    assert newcomer.status_code == 200
    # The plays still count: one per viewer.
    assert int(counter_redis.hget("vp:plays:pending", video.pk)) == 3


def test_signed_urls_of_a_warm_answer_play_and_stay_capped(api_client: Any, ready_video: Any) -> None:
    video = ready_video()
    stream(api_client, video)
    body = stream(api_client, video).json()  # from the tiers
    master = api_client.get(_path(body["master_playlist_url"]))
    assert master.status_code == 200 and b"854x480" in master.content and b"1920x1080" not in master.content
    assert api_client.get(_path(body["renditions"][0]["url"])).status_code == 200
    root = body["master_playlist_url"].rsplit("/", 1)[0]
    assert api_client.get(_path(f"{root}/1080p/index.m3u8")).status_code == 403
    assert api_client.get(_path(body["poster_url"])).status_code == 200


def test_a_premium_video_still_needs_a_subscription_once_its_ladder_is_cached(
    api_client: Any, user_client: Any, ready_video: Any
) -> None:
    video = ready_video(is_premium=True)
    subscriber = _subscriber(720)
    assert stream(subscriber, video).status_code == 200
    assert stream(subscriber, video).status_code == 200
    for client in (api_client, user_client):
        response = stream(client, video)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "subscription_required"


def test_a_re_run_shows_its_state_and_then_its_new_ladder(api_client: Any, clip: Any, settings: Any) -> None:
    settings.TRANSCODE_X264_PRESET = "ultrafast"
    source = clip(width=854, height=480, duration=2.0, fps=10)
    video = VideoFactory(status=Video.Status.PROCESSING)
    name = storage.source_name(video.pk, source.name)
    with open(source, "rb") as handle:
        storage.save_file(name, handle)
    media_file = MediaFile.objects.create(
        video=video, status=MediaFile.Status.UPLOADED, source_path=name, source_size=source.stat().st_size
    )
    assert services.media_file_transcode(media_file_id=media_file.pk) is not None
    first = stream(api_client, video).json()
    assert stream(api_client, video).json()["renditions"] == first["renditions"]  # warm
    assert [r["quality"] for r in first["renditions"]] == [480, 360]

    assert services.media_file_retranscode(media_file=_media(video))
    waiting = stream(api_client, video)
    assert waiting.status_code == 409
    assert (waiting.json()["error"]["status"], waiting.json()["error"]["progress"]) == ("uploaded", 0)

    assert services.media_file_transcode(media_file_id=media_file.pk) is not None
    second = stream(api_client, video).json()
    old_run = first["master_playlist_url"].split("/")[5].split(".")[1]
    new_run = second["master_playlist_url"].split("/")[5].split(".")[1]
    assert old_run != new_run == _media(video).run_token
    assert api_client.get(_path(second["master_playlist_url"])).status_code == 200
    # The first run's folder is gone: its links no longer play.
    assert api_client.get(_path(first["renditions"][0]["url"])).status_code == 404


def test_progress_of_a_media_file_in_the_pipeline_is_never_frozen(api_client: Any, ready_video: Any) -> None:
    video = ready_video()
    # The worker's progress writes are plain UPDATEs that tell no cache.
    MediaFile.objects.filter(video_id=video.pk).update(status=MediaFile.Status.PROCESSING, progress=40)
    assert stream(api_client, video).json()["error"]["progress"] == 40
    MediaFile.objects.filter(video_id=video.pk).update(progress=60)
    assert stream(api_client, video).json()["error"]["progress"] == 60
    # Even a ready state that reached no cache is served: "not ready" is never cached as such.
    MediaFile.objects.filter(video_id=video.pk).update(status=MediaFile.Status.READY, progress=100)
    assert stream(api_client, video).status_code == 200


def test_a_failure_shows_at_once(api_client: Any, ready_video: Any) -> None:
    video = ready_video()
    stream(api_client, video)
    assert stream(api_client, video).status_code == 200
    services.media_file_mark_failed(media_file_id=_media(video).pk, message="Storage lost the outputs.")
    response = stream(api_client, video)
    assert response.status_code == 409
    assert response.json()["error"]["status"] == "failed"


def test_a_deleted_video_is_gone_at_once(api_client: Any, ready_video: Any) -> None:
    video = ready_video()
    stream(api_client, video)
    assert stream(api_client, video).status_code == 200
    video_services.video_delete(video=video)
    response = stream(api_client, video)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.fixture
def admin_client(client: Any, staff_user: Any) -> Any:
    client.force_login(staff_user)
    return client


def test_staff_changes_in_the_admin_show_at_once(admin_client: Any, ready_video: Any) -> None:
    video = ready_video()
    subscriber = _subscriber(1080)
    stream(subscriber, video)
    assert len(stream(subscriber, video).json()["renditions"]) == 4
    top = Rendition.objects.get(media_file__video_id=video.pk, quality=1080)
    response = admin_client.post(f"/admin/streaming/rendition/{top.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert [r["quality"] for r in stream(subscriber, video).json()["renditions"]] == [720, 480, 360]

    changelist = admin_client.post(
        "/admin/streaming/rendition/",
        {
            "action": "delete_selected",
            "post": "yes",
            "_selected_action": list(
                Rendition.objects.filter(media_file__video_id=video.pk, quality__gte=480).values_list(
                    "pk", flat=True
                )
            ),
        },
    )
    assert changelist.status_code == 302
    assert [r["quality"] for r in stream(subscriber, video).json()["renditions"]] == [360]

    admin_client.post(
        "/admin/streaming/mediafile/", {"action": "rerun_transcode", "_selected_action": [_media(video).pk]}
    )
    assert stream(subscriber, video).json()["error"]["status"] == "uploaded"

    media_file = _media(video)
    admin_client.post(f"/admin/streaming/mediafile/{media_file.pk}/delete/", {"post": "yes"})
    assert not MediaFile.objects.filter(pk=media_file.pk).exists()
    assert stream(subscriber, video).status_code == 409


@pytest.fixture
def other_process() -> Iterator[Tiers]:
    """Tiers with their own L1 and invalidation feed on the same L2: what another process has."""
    other = live(Tiers(django_settings.CACHE_TIERS_ALIAS))
    yield other
    other.stop()


def test_another_process_drops_the_ladder_when_a_run_starts_again(
    api_client: Any, ready_video: Any, other_process: Tiers
) -> None:
    video = ready_video()
    stream(api_client, video)  # cold: the ladder is written to L2
    loads: list[str] = []

    def load() -> Any:
        loads.append(video.pk)
        return selectors._ready_ladders([video.pk]).get(video.pk)

    assert other_process.fetch(MEDIA, video.pk, load) is not None
    assert loads == []  # L2 already held it
    services.media_file_retranscode(media_file=_media(video))
    assert wait_for(lambda: other_process.fetch(MEDIA, video.pk, load) is None)


@pytest.mark.parametrize("cdn", [False, True])
def test_the_answer_is_the_serializers_data(ready_video: Any, settings: Any, cdn: bool) -> None:
    if cdn:
        pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        settings.CLOUDFRONT_DOMAIN = "cdn.example.com"
        settings.CLOUDFRONT_KEY_PAIR_ID = "K2TESTKEYPAIR"
        settings.CLOUDFRONT_PRIVATE_KEY = pem.decode()
    video = ready_video()
    full = Entitlement(
        max_resolution=1080, has_active_subscription=True, plan_code="max", concurrent_streams=4
    )
    for entitlement, bandwidth in ((viewer_entitlement(None), None), (full, 600_000), (full, 9_000_000)):
        manifest = selectors.stream_manifest(
            video=video, viewer=None, entitlement=entitlement, bandwidth=bandwidth, base_url="https://h/"
        )
        built = stream_representation(manifest)
        expected = StreamSerializer(manifest).data
        assert built == expected and list(built) == list(expected)
        assert built["delivery"] == ("cdn" if cdn else "app")
    bare = selectors.StreamManifest(
        video_id="vid_x",
        duration=None,
        master_playlist_url="https://h/m.m3u8",
        renditions=[manifest.renditions[-1]],
        recommended_rendition=manifest.renditions[-1],
        max_resolution=360,
        expires_at=datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        poster_url=None,
    )
    assert stream_representation(bare) == StreamSerializer(bare).data
    assert stream_representation(bare)["expires_at"] == "2030-01-02T03:04:05.678000Z"
