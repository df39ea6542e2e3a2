"""One Redis round trip per read request: what the request will read is fetched together at its
start (``videoplatform.cache.prefetch``), cache fills take their lock with their read and release
it with their store, and none of it changes a byte of any answer."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import caches
from redis.connection import AbstractConnection

from tests.cache.conftest import requires_redis, wait_for
from tests.factories import VideoFactory
from videoplatform.api.throttling import WINDOW_SECONDS
from videoplatform.cache import VIDEO, prefetch
from videoplatform.cache.core import Tiers
from videos.models import Video

pytestmark = [requires_redis, pytest.mark.django_db(transaction=True)]

MIDDLEWARE = "videoplatform.cache.middleware.PrefetchMiddleware"


class RoundTrips:
    """Commands and pipelines this thread sends to Redis (a pipeline is one round trip)."""

    def __init__(self) -> None:
        self.count = 0
        self.sent: list[bytes] = []
        self.thread = threading.get_ident()


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[RoundTrips]:
    trips = RoundTrips()
    send = AbstractConnection.send_packed_command

    def counted(self: Any, command: Any, check_health: bool = True) -> None:
        if threading.get_ident() == trips.thread:
            trips.count += 1
            trips.sent.append(command if isinstance(command, bytes) else b"".join(command))
        send(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)
    yield trips


def _answer(response: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    return response.status_code, sorted(response.items()), response.content


def _warm(client: Any, path: str, **extra: Any) -> None:
    # The token's snapshot cached and known here, the video and its owner in L2, the owner known.
    for _ in range(2):
        assert client.get(path, **extra).status_code == 200


def test_a_detail_read_missing_l1_makes_one_round_trip(
    this_process: Tiers, user_client: Any, api_client: Any, round_trips: RoundTrips
) -> None:
    video = VideoFactory(title="One trip")
    path = f"/api/videos/{video.pk}"
    _warm(user_client, path)
    _warm(api_client, path)
    for client in (user_client, api_client):
        this_process.l1.clear()  # not in L1: a new process, or an entry that went
        before = round_trips.count
        response = client.get(path)
        assert response.status_code == 200 and response.json()["title"] == "One trip"
        assert round_trips.count - before == 1  # token + video + owner (+ pins) in one MGET


def test_answers_are_the_same_bytes_with_and_without_the_prefetch(
    this_process: Tiers, user_client: Any, api_client: Any, settings: Any
) -> None:
    videos = [VideoFactory(), VideoFactory(privacy=Video.Privacy.UNLISTED), VideoFactory(is_adult=True)]
    paths = [f"/api/videos/{video.pk}" for video in videos] + ["/api/videos/vid_none"]
    paths += [f"/api/videos/{videos[0].pk}?fields=id,title,owner", f"/api/videos/{videos[1].pk}/stream"]

    def answers() -> list[Any]:
        found = []
        for _ in range(2):  # cold (not in L1), then from L1
            this_process.l1.clear()
            for client in (user_client, api_client):
                found += [_answer(client.get(path)) for path in paths]
        return found

    with_prefetch = answers()
    settings.MIDDLEWARE = [name for name in settings.MIDDLEWARE if name != MIDDLEWARE]
    assert answers() == with_prefetch


def test_a_value_read_before_an_invalidation_is_not_kept_in_l1(
    this_process: Tiers, other_process: Tiers
) -> None:
    video = VideoFactory(title="Before")
    loads: list[str] = []

    def loader() -> dict[str, Any]:
        loads.append(video.pk)
        return {"title": Video.objects.get(pk=video.pk).title}

    assert this_process.fetch(VIDEO, video.pk, loader) == {"title": "Before"}  # in L2 now
    this_process.l1.clear()
    batch = this_process.prefetch([prefetch.Entry(VIDEO, video.pk)])
    assert batch is not None and (VIDEO, video.pk, "") in batch.entries
    mark = this_process.l1.mark(VIDEO)
    Video.objects.filter(pk=video.pk).update(title="After")
    other_process.invalidate(VIDEO, [video.pk])  # another process's write, after the prefetch
    assert wait_for(lambda: this_process.l1.mark(VIDEO) != mark)  # its feed message arrived
    token = prefetch.start(batch)
    try:
        # What the request read at its start, as any read that started before the write...
        assert this_process.fetch(VIDEO, video.pk, loader) == {"title": "Before"}
    finally:
        prefetch.stop(token)
    # ...but it is not kept: the next read sees the write.
    assert this_process.fetch(VIDEO, video.pk, loader) == {"title": "After"}
    assert len(loads) == 2


def test_a_fill_makes_two_round_trips_and_leaves_no_lock(
    this_process: Tiers, round_trips: RoundTrips
) -> None:
    video = VideoFactory(title="Filled")
    before = round_trips.count
    assert this_process.fetch(VIDEO, video.pk, lambda: {"title": "Filled"}) == {"title": "Filled"}
    assert round_trips.count - before == 2  # read and lock; store and unlock
    entry, _, locked = this_process.remote.read(VIDEO, video.pk, "")
    assert entry is not None and entry.data == {"title": "Filled"} and not locked


def test_the_throttle_counts_a_first_request_in_the_same_round_trip(
    this_process: Tiers, api_client: Any, settings: Any, round_trips: RoundTrips
) -> None:
    settings.API_THROTTLE_ANON_RATE = "1000/min"
    video = VideoFactory()
    path = f"/api/videos/{video.pk}"
    _warm(api_client, path)
    this_process.l1.clear()
    before = round_trips.count
    assert api_client.get(path, REMOTE_ADDR="10.20.30.40").status_code == 200
    assert round_trips.count - before == 1
    key = f"throttle:api:ip:10.20.30.40:{int(time.time() // WINDOW_SECONDS)}"
    assert caches["default"].get(key) == 1  # counted in Redis, where every process sees it


def test_a_token_revoked_since_it_was_last_seen_is_refused(
    this_process: Tiers, user: Any, user_client: Any
) -> None:
    from accounts.models import AuthToken
    from accounts.services import user_tokens_revoke

    video = VideoFactory()
    path = f"/api/videos/{video.pk}"
    _warm(user_client, path)
    assert AuthToken.objects.filter(user=user).exists()
    user_tokens_revoke(user_ids=[user.pk])
    this_process.l1.clear()
    assert user_client.get(path).status_code == 401


def test_a_kept_answer_gone_stale_reads_the_token_once(user: Any, round_trips: RoundTrips) -> None:
    """The response cache checks the token, finds the answer stale and hands the request to
    Django: the token is not read again, the rest is one round trip."""
    from tests.platform.test_response_cache import CountingDjango, bearer, call, warm
    from videoplatform.cache import tiers
    from videoplatform.entry.response_cache import ResponseCache

    django = CountingDjango()
    app = ResponseCache(django, max_entries=100, max_bytes=8 * 1024 * 1024)
    this_process = tiers()
    this_process.feed.ensure_started()
    assert wait_for(this_process.feed.alive)
    video = VideoFactory(title="Kept")
    path = f"/api/videos/{video.pk}"
    token = bearer(user)
    kept = warm(app, path, HTTP_AUTHORIZATION=token)
    warm(app, path, HTTP_AUTHORIZATION=token)  # the token and the owner known here
    this_process.l1.clear()  # the answer's entries left L1: it is not served any more
    calls, before = django.calls, round_trips.count
    answer = call(app, path, HTTP_AUTHORIZATION=token)
    assert django.calls == calls + 1
    assert (answer.status, answer.body) == (kept.status, kept.body)
    sent = round_trips.sent[before:]
    assert len(sent) == 2  # the response cache's token check; the video and its owner
    assert sum(b"vp:tokens:" in command for command in sent) == 1
