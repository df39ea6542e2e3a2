"""The response cache at its edges, where it repeats what Django and DRF do: its memory bound,
what it admits and evicts, how it reads the Authorization header and cookies, its accounting
under threads, and what it counts (metrics, the throttle)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.core.cache import caches
from django.test import override_settings

from tests.cache.conftest import requires_redis
from tests.factories import VideoFactory
from tests.platform.test_response_cache import CountingDjango, app, bearer, call, counter, django_app, warm
from videoplatform.api.throttling import WINDOW_SECONDS
from videoplatform.entry.response_cache import ResponseCache, _key_size
from videos.models import Video

__all__ = ["app", "django_app"]  # the fixtures, shared with test_response_cache

pytestmark = [requires_redis, pytest.mark.django_db(transaction=True)]


def stored_bytes(cache: ResponseCache) -> int:
    """What the cache really holds: keys, statuses, headers and bodies."""
    total = 0
    for key, group in cache._groups.items():
        total += _key_size(key)
        for answer in group.answers.values():
            headers = sum(len(name) + len(value) for name, value in answer.headers)
            total += len(answer.body) + len(answer.status) + headers
    return total


def test_the_memory_bound_counts_the_keys_clients_choose(django_app: CountingDjango):
    cache = ResponseCache(django_app, max_entries=1000, max_bytes=64 * 1024)
    video = VideoFactory()
    path = f"/api/videos/{video.pk}"
    for n in range(60):  # each a new key of ~1.9 KB, each kept (asked for twice)
        junk = f"x-junk-{n:04d}-" + "z" * 1900
        assert warm(cache, path, HTTP_ACCEPT_ENCODING=junk).code == 200
    assert len(cache) > 5  # it does keep them
    assert stored_bytes(cache) <= cache._size <= 64 * 1024


def test_a_key_longer_than_the_bound_is_not_kept(app: ResponseCache, django_app: CountingDjango):
    video = VideoFactory()
    path = f"/api/videos/{video.pk}"
    long_header = "x-" + "y" * 4000
    for _ in range(3):
        assert call(app, path, HTTP_ACCEPT_ENCODING=long_header).code == 200
    assert django_app.calls == 3 and len(app) == 0


def test_keys_are_normalised_so_that_the_same_question_is_one_entry(
    app: ResponseCache, django_app: CountingDjango
):
    VideoFactory(ready=True, title="One")
    first = warm(app, "/api/videos", "limit=5&page=1&fields=id%2Ctitle")
    calls = django_app.calls
    again = call(app, "/api/videos", "fields=id,title&page=1&limit=5")
    assert django_app.calls == calls  # the same parameters in another order and spelling
    assert again.body == first.body
    assert [video["title"] for video in again.json()["data"]] == ["One"]


def test_eviction_is_least_recently_used(django_app: CountingDjango):
    cache = ResponseCache(django_app, max_entries=2, max_bytes=8 * 1024 * 1024)
    hot, cold, new = (VideoFactory() for _ in range(3))
    warm(cache, f"/api/videos/{hot.pk}")
    warm(cache, f"/api/videos/{cold.pk}")
    call(cache, f"/api/videos/{hot.pk}")  # used again: now the most recent
    warm(cache, f"/api/videos/{new.pk}")  # evicts one
    calls = django_app.calls
    call(cache, f"/api/videos/{hot.pk}")
    assert django_app.calls == calls  # the hot answer stayed
    call(cache, f"/api/videos/{cold.pk}")
    assert django_app.calls == calls + 1  # the least recently used went


def test_junk_and_one_off_requests_do_not_evict_a_hot_answer(django_app: CountingDjango):
    cache = ResponseCache(django_app, max_entries=2, max_bytes=8 * 1024 * 1024)
    hot = VideoFactory()
    path = f"/api/videos/{hot.pk}"
    warm(cache, path)
    for n in range(5):
        call(cache, path, f"utm_source=mail{n}")  # an unknown parameter: Django's same answer
        call(cache, path, f"utm_source=mail{n}")  # asked for twice, still not kept
    for fields in ("id", "title", "id,title", "title,id", "title,duration"):
        call(cache, path, f"fields={fields}")  # each asked for once: one-offs
    calls = django_app.calls
    assert call(cache, path).code == 200
    assert django_app.calls == calls  # still served from the cache
    assert len(cache) == 1


def test_an_unknown_query_parameter_is_answered_by_django_each_time(
    app: ResponseCache, django_app: CountingDjango
):
    video = VideoFactory()
    path = f"/api/videos/{video.pk}"
    for _ in range(4):
        assert call(app, path, "utm_campaign=spring").code == 200
    assert django_app.calls == 4 and len(app) == 0


@pytest.mark.parametrize(
    "spoil",
    [
        lambda token: token + "\x1c",  # a trailing control character: DRF reads another token
        lambda token: token + "\x85",  # non-ASCII whitespace
        lambda token: token.replace(" ", "\xa0"),  # no ASCII space: not a bearer header at all
        lambda token: token.replace(" ", "\x1f"),
    ],
)
def test_the_authorization_header_is_read_as_the_api_reads_it(
    app: ResponseCache, django_app: CountingDjango, user: Any, spoil: Any
):
    video = VideoFactory()
    path = f"/api/videos/{video.pk}"
    token = bearer(user)
    warm(app, path, HTTP_AUTHORIZATION=token)
    header = spoil(token)
    served = call(app, path, HTTP_AUTHORIZATION=header)
    reference = call(django_app.handler, path, HTTP_AUTHORIZATION=header)
    assert (served.status, served.header_list, served.body) == (
        reference.status,
        reference.header_list,
        reference.body,
    )


def test_requests_with_cookies_it_cannot_reason_about_go_to_django(
    app: ResponseCache, django_app: CountingDjango
):
    video = VideoFactory()
    path = f"/api/videos/{video.pk}"
    warm(app, path)
    calls = django_app.calls
    malformed = call(app, path, HTTP_COOKIE="csrftoken=not-a-token")
    assert "Set-Cookie" in malformed.headers  # Django replaces the malformed CSRF cookie
    junk_session = call(app, path, HTTP_COOKIE="sessionid=junk")
    assert django_app.calls == calls + 2
    reference = call(django_app.handler, path, HTTP_COOKIE="sessionid=junk")
    assert junk_session.header_list == reference.header_list
    well_formed = call(app, path, HTTP_COOKIE="csrftoken=" + "a" * 32)
    assert well_formed.code == 200 and "Set-Cookie" not in well_formed.headers
    assert django_app.calls == calls + 2  # served from the cache: Django would add nothing


def test_a_stale_answer_of_an_evicted_group_is_not_subtracted_twice(django_app: CountingDjango):
    cache = ResponseCache(django_app, max_entries=1, max_bytes=8 * 1024 * 1024)
    first, second = VideoFactory(), VideoFactory()
    environ_path = f"/api/videos/{first.pk}"
    warm(cache, environ_path)
    ((key, group),) = cache._groups.items()
    # What a thread holding ``group`` sees while another evicts it and the video changes:
    warm(cache, f"/api/videos/{second.pk}")
    Video.objects.filter(pk=first.pk).update(title="Changed")
    from videoplatform.cache import tiers
    from videos.selectors import _video_rows

    tiers().invalidate("video", [first.pk], refresh=_video_rows)
    from django.test import RequestFactory

    environ = RequestFactory()._base_environ(PATH_INFO=environ_path, REQUEST_METHOD="GET")  # type: ignore[attr-defined]
    assert cache._serve(key, group, environ, lambda *a: None, time.perf_counter()) is None
    assert cache._size == sum(g.size for g in cache._groups.values()) > 0


def test_the_byte_count_stays_exact_under_threads(django_app: CountingDjango):
    import threading

    cache = ResponseCache(django_app, max_entries=3, max_bytes=8 * 1024 * 1024)
    videos = [VideoFactory() for _ in range(6)]
    from videoplatform.cache import tiers
    from videos.selectors import _video_rows

    def reader(n: int) -> None:
        for i in range(30):
            call(cache, f"/api/videos/{videos[(n + i) % len(videos)].pk}")

    def writer() -> None:
        for i in range(30):
            tiers().invalidate("video", [videos[i % len(videos)].pk], refresh=_video_rows)

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(4)] + [
        threading.Thread(target=writer)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache._size == sum(group.size for group in cache._groups.values())
    assert cache._size >= 0


def test_a_hit_that_checked_its_token_in_the_database_counts_that_query(app: ResponseCache, user: Any):
    video = VideoFactory()
    path = f"/api/videos/{video.pk}"
    token = bearer(user)
    warm(app, path, HTTP_AUTHORIZATION=token)
    view = "api/videos/<str:video_id>"
    before = counter("http_request_db_queries_sum", method="GET", view=view)
    hits = counter("response_cache_requests_total", result="hit")
    caches["tokens"].clear()  # the next check reads PostgreSQL
    assert call(app, path, HTTP_AUTHORIZATION=token).code == 200
    assert counter("response_cache_requests_total", result="hit") == hits + 1
    assert counter("http_request_db_queries_sum", method="GET", view=view) >= before + 1


def test_a_request_over_the_throttle_limit_is_counted_once(app: ResponseCache):
    video = VideoFactory()
    path = f"/api/videos/{video.pk}"
    with override_settings(API_THROTTLE_ANON_RATE="4/min", API_THROTTLE_SYNC_INTERVAL=0):
        window = int(time.time() // WINDOW_SECONDS)
        codes = [call(app, path).code for _ in range(7)]
        if int(time.time() // WINDOW_SECONDS) != window:
            pytest.skip("a throttle window ended during the test")
        count = caches["default"].get(f"throttle:api:ip:127.0.0.1:{window}")
    assert codes == [200, 200, 200, 200, 429, 429, 429]
    assert count == 7
