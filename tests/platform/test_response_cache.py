"""What a client notices of the response cache in front of Django: the same answers as Django's,
never a stale one, never someone else's, and the throttle, authentication and metrics still apply.

The cache wraps the WSGI application (videoplatform/wsgi.py); these tests call a wrapped
``WSGIHandler`` with WSGI environments, as gunicorn does, and count how often Django ran.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterable
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import caches
from django.core.handlers.wsgi import WSGIHandler
from django.test import RequestFactory, override_settings
from prometheus_client import REGISTRY

from accounts import services as accounts_services
from tests.cache.conftest import live, requires_redis, wait_for
from tests.conftest import login_client
from tests.factories import PlanFactory, UserFactory, VideoFactory
from videoplatform.cache import tiers
from videoplatform.cache.core import Tiers
from videoplatform.entry.response_cache import ResponseCache, read_body
from videos import selectors as video_selectors
from videos.models import Video

pytestmark = [requires_redis, pytest.mark.django_db(transaction=True)]


class CountingDjango:
    """Django's WSGI handler, counting the requests it answered."""

    def __init__(self) -> None:
        self.handler = WSGIHandler()
        self.calls = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self.calls += 1
        return self.handler(environ, start_response)


class Answer:
    def __init__(self, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.code = int(status[:3])
        self.headers = dict(headers)
        self.header_list = headers
        self.body = body

    def json(self) -> Any:
        import json

        raw = gzip.decompress(self.body) if self.headers.get("Content-Encoding") == "gzip" else self.body
        return json.loads(raw)


def call(app: Any, path: str, query: str = "", **headers: str) -> Answer:
    environ = RequestFactory()._base_environ(  # type: ignore[attr-defined]
        PATH_INFO=path, QUERY_STRING=query, REQUEST_METHOD="GET", **headers
    )
    captured: list[Any] = []

    def start_response(status: str, header_list: list[tuple[str, str]], exc_info: Any = None) -> None:
        captured[:] = [status, header_list]

    body = read_body(app(environ, start_response))
    return Answer(captured[0], list(captured[1]), body)


def bearer(user: Any) -> str:
    return str(login_client(user)._credentials["HTTP_AUTHORIZATION"])


@pytest.fixture
def django_app() -> CountingDjango:
    live(tiers())
    return CountingDjango()


@pytest.fixture
def app(django_app: CountingDjango) -> ResponseCache:
    return ResponseCache(django_app, max_entries=100, max_bytes=8 * 1024 * 1024)


def warm(app: Any, path: str, query: str = "", **headers: str) -> Answer:
    """Requests until an answer is surely kept (the first that reads only the tiers is)."""
    for _ in range(2):
        answer = call(app, path, query, **headers)
    return answer


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_hot_video_is_answered_without_django_with_djangos_exact_answer(
    app: ResponseCache, django_app: CountingDjango
):
    video = VideoFactory(title="Hot", description="A long description. " * 100)  # compressed
    path = f"/api/videos/{video.pk}"
    kept = warm(app, path, HTTP_ACCEPT_ENCODING="gzip")
    reference = call(django_app.handler, path, HTTP_ACCEPT_ENCODING="gzip")
    calls = django_app.calls
    for _ in range(5):
        served = call(app, path, HTTP_ACCEPT_ENCODING="gzip")
        assert (served.status, served.header_list, served.body) == (kept.status, kept.header_list, kept.body)
    assert django_app.calls == calls  # Django did not run
    assert (served.status, served.header_list, served.body) == (
        reference.status,
        reference.header_list,
        reference.body,
    )
    assert served.headers["Content-Encoding"] == "gzip" and served.json()["title"] == "Hot"
    plain = warm(app, path)  # another Accept-Encoding is another answer
    assert "Content-Encoding" not in plain.headers and plain.json()["title"] == "Hot"


def test_the_request_that_loads_the_data_into_l1_is_kept(app: ResponseCache, django_app: CountingDjango):
    video = VideoFactory()
    path = f"/api/videos/{video.pk}"
    assert call(app, path).code == 200  # asked for once: not kept (one-offs are not admitted)
    tiers().clear_local()  # the next request must load the rows again
    assert call(app, path).code == 200  # reads PostgreSQL, stores the rows in L1, keeps the answer
    assert call(app, path).code == 200
    assert django_app.calls == 2


def test_an_answer_that_ran_sql_beside_the_tiers_is_not_kept(
    app: ResponseCache, django_app: CountingDjango, user: Any
):
    video = VideoFactory()
    path = f"/api/videos/{video.pk}"
    token = bearer(user)
    caches["tokens"].clear()  # the token's next check reads PostgreSQL
    call(app, path, HTTP_AUTHORIZATION=token)
    call(app, path, HTTP_AUTHORIZATION=token)  # the token is cached now: this one is kept
    call(app, path, HTTP_AUTHORIZATION=token)
    assert django_app.calls == 2


def test_a_change_shows_at_once_here_and_when_another_process_makes_it(
    app: ResponseCache, django_app: CountingDjango, user: Any
):
    video = VideoFactory(owner=user, title="Before")
    path = f"/api/videos/{video.pk}"
    warm(app, path)
    login_client(user).patch(path, {"title": "After"}, format="json")  # this process writes
    assert call(app, path).json()["title"] == "After"
    warm(app, path)

    other = live(Tiers("default"))  # another process: its write reaches this one over the feed
    try:
        Video.objects.filter(pk=video.pk).update(title="Elsewhere")
        other.invalidate("video", [video.pk], refresh=video_selectors._video_rows)
        assert wait_for(lambda: call(app, path).json()["title"] == "Elsewhere")
    finally:
        other.stop()


def test_an_answer_outlives_a_refill_of_its_owner_with_nothing_changed(
    app: ResponseCache, django_app: CountingDjango, user: Any
):
    """A channel's videos all show its owner's profile; when that entry's time is up and another
    request refills it unchanged, the answers kept for the other videos stay in use. A change of
    the profile retires them at once."""
    first, second = VideoFactory(owner=user), VideoFactory(owner=user)
    with override_settings(CACHE_TTLS={**settings.CACHE_TTLS, "user": 1}):
        live(tiers())  # the tiers start again with the new setting: their feed first
        warm(app, f"/api/videos/{first.pk}")
        time.sleep(1.1)  # the owner's entry is out of date, L1 and L2 (the videos' are not)
        assert call(app, f"/api/videos/{second.pk}").code == 200  # reloads the owner, unchanged
        calls = django_app.calls
        assert call(app, f"/api/videos/{first.pk}").json()["owner"]["username"] == user.username
        assert django_app.calls == calls  # still the kept answer

        accounts_services.user_update(user=user, display_name="Renamed")
        assert call(app, f"/api/videos/{first.pk}").json()["owner"]["display_name"] == "Renamed"
        assert django_app.calls == calls + 1


def test_a_feed_page_is_kept_by_the_request_that_refills_some_of_its_owners(
    app: ResponseCache, django_app: CountingDjango
):
    owners = [UserFactory() for _ in range(3)]
    for owner in owners:
        VideoFactory(owner=owner, ready=True)
    warm(app, "/api/videos")
    tiers().l1.invalidate_scopes("user", [owners[1].pk])  # one owner left this process's L1
    calls = django_app.calls
    for _ in range(3):
        assert {video["owner"]["username"] for video in call(app, "/api/videos").json()["data"]} >= {
            owner.username for owner in owners
        }
    assert django_app.calls == calls + 1  # the page was kept by the request that refilled it


def test_private_and_adult_videos_are_never_shared(app: ResponseCache, django_app: CountingDjango, user: Any):
    private = VideoFactory(owner=user, privacy=Video.Privacy.PRIVATE)
    adult = VideoFactory(is_adult=True)
    owner = bearer(user)
    fan = bearer(UserFactory(show_adult_content=True))
    warm(app, f"/api/videos/{private.pk}", HTTP_AUTHORIZATION=owner)
    warm(app, f"/api/videos/{adult.pk}", HTTP_AUTHORIZATION=fan)
    calls = django_app.calls
    assert call(app, f"/api/videos/{private.pk}", HTTP_AUTHORIZATION=owner).code == 200
    assert call(app, f"/api/videos/{adult.pk}", HTTP_AUTHORIZATION=fan).code == 200
    assert django_app.calls == calls + 2  # both went to Django
    # ... which still refuses them to anyone else.
    assert call(app, f"/api/videos/{private.pk}").code == 404
    assert call(app, f"/api/videos/{adult.pk}").code == 404
    assert call(app, f"/api/videos/{adult.pk}", HTTP_AUTHORIZATION=bearer(UserFactory())).code == 404


def test_the_feed_is_shared_only_between_viewers_with_the_same_adult_preference(
    app: ResponseCache, django_app: CountingDjango
):
    VideoFactory(title="Everyone's", ready=True)
    VideoFactory(title="Adults only", is_adult=True, ready=True)
    fan, plain = bearer(UserFactory(show_adult_content=True)), bearer(UserFactory())
    titles = {
        name: {video["title"] for video in warm(app, "/api/videos", **headers).json()["data"]}
        for name, headers in (
            ("anonymous", {}),
            ("fan", {"HTTP_AUTHORIZATION": fan}),
            ("plain", {"HTTP_AUTHORIZATION": plain}),
        )
    }
    calls = django_app.calls
    again = {
        "anonymous": call(app, "/api/videos").json(),
        "fan": call(app, "/api/videos", HTTP_AUTHORIZATION=fan).json(),
        "plain": call(app, "/api/videos", HTTP_AUTHORIZATION=plain).json(),
    }
    assert django_app.calls == calls
    assert titles["fan"] == {"Everyone's", "Adults only"}
    assert titles["anonymous"] == titles["plain"] == {"Everyone's"}
    assert {name: {v["title"] for v in body["data"]} for name, body in again.items()} == titles


def test_a_revoked_token_is_refused_even_for_a_kept_answer(app: ResponseCache, user: Any):
    video = VideoFactory()
    client = login_client(user)
    token = str(client._credentials["HTTP_AUTHORIZATION"])
    warm(app, f"/api/videos/{video.pk}", HTTP_AUTHORIZATION=token)
    assert client.post("/api/auth/logout").status_code in (200, 204)
    refused = call(app, f"/api/videos/{video.pk}", HTTP_AUTHORIZATION=token)
    assert refused.code == 401 and refused.json()["error"]["code"] in (
        "invalid_token",
        "authentication_failed",
    )
    garbage = call(app, f"/api/videos/{video.pk}", HTTP_AUTHORIZATION="Bearer vpt_nonsense")
    assert garbage.code == 401


def test_the_throttle_counts_kept_answers(app: ResponseCache):
    video = VideoFactory()
    with override_settings(API_THROTTLE_ANON_RATE="4/min"):
        codes = [call(app, f"/api/videos/{video.pk}").code for _ in range(6)]
    assert codes == [200, 200, 200, 200, 429, 429]


def test_a_session_or_an_unusual_authorization_goes_to_django(app: ResponseCache, django_app: CountingDjango):
    video = VideoFactory()
    path = f"/api/videos/{video.pk}"
    warm(app, path)
    calls = django_app.calls
    call(app, path, HTTP_COOKIE="sessionid=abc")
    call(app, path, HTTP_AUTHORIZATION="Basic dXNlcjpwYXNz")
    assert django_app.calls == calls + 2


def test_a_path_whose_view_never_shares_is_not_recorded_again(
    app: ResponseCache, django_app: CountingDjango, monkeypatch: pytest.MonkeyPatch
):
    """``/api/auth/me`` is every viewer's own: after its view said so, the path's requests go to
    Django without the recording that looks for an answer to keep (half of them paid it before:
    a path is recorded on every second miss)."""
    first, second = UserFactory(username="first"), UserFactory(username="second")
    tokens = {first.username: bearer(first), second.username: bearer(second)}
    recorded: list[str] = []
    record = app._record

    def counted(key: Any, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        recorded.append(environ["PATH_INFO"])
        return record(key, environ, start_response)

    monkeypatch.setattr(app, "_record", counted)
    seen = [
        call(app, "/api/auth/me", HTTP_AUTHORIZATION=tokens[name]).json()["username"]
        for name in ["first", "second"] * 5
    ]
    assert seen == ["first", "second"] * 5  # each their own, every time
    assert django_app.calls == 10
    assert recorded == ["/api/auth/me"]  # the second request: its view said never
    assert len(app) == 0


def test_hosts_and_negotiation_are_part_of_the_key(app: ResponseCache):
    video = VideoFactory()
    path = f"/api/videos/{video.pk}"
    warm(app, path, HTTP_HOST="localhost")
    assert call(app, path, HTTP_HOST="evil.example").code == 400  # ALLOWED_HOSTS still applies
    refused = call(app, path, HTTP_ACCEPT="text/csv")
    assert refused.code == 406


def test_kept_answers_are_counted_as_their_view_and_as_hits(app: ResponseCache):
    video = VideoFactory()
    path = f"/api/videos/{video.pk}"
    warm(app, path)
    labels = {"method": "GET", "view": "api/videos/<str:video_id>", "status": "200", "kind": "api"}
    requests_before = counter("http_requests_total", **labels)
    hits_before = counter("response_cache_requests_total", result="hit")
    for _ in range(3):
        call(app, path)
    assert counter("http_requests_total", **labels) == requests_before + 3
    assert counter("response_cache_requests_total", result="hit") == hits_before + 3


def test_plans_are_shared_by_everyone_whatever_the_authorization_header(
    app: ResponseCache, django_app: CountingDjango
):
    PlanFactory(code="basic", name="Basic")
    first = warm(app, "/api/subscriptions/plans")
    calls = django_app.calls
    assert call(app, "/api/subscriptions/plans", HTTP_AUTHORIZATION="Bearer vpt_whatever").body == first.body
    assert django_app.calls == calls
    assert [plan["name"] for plan in first.json()["data"]] == ["Basic"]


def test_nothing_is_kept_while_the_invalidation_feed_is_down(app: ResponseCache, django_app: CountingDjango):
    video = VideoFactory()
    path = f"/api/videos/{video.pk}"
    warm(app, path)
    tiers().feed._connected = False  # what a lost feed leaves: L1 is off in this process
    try:
        calls = django_app.calls
        assert call(app, path).code == 200
        assert django_app.calls == calls + 1
    finally:
        tiers().clear_local()
        tiers().feed._connected = True


def test_bounded_in_entries(django_app: CountingDjango):
    app = ResponseCache(django_app, max_entries=2, max_bytes=8 * 1024 * 1024)
    videos = [VideoFactory() for _ in range(4)]
    for video in videos:
        warm(app, f"/api/videos/{video.pk}")
    assert len(app) == 2


def test_switched_off_it_is_django_alone(django_app: CountingDjango):
    app = ResponseCache(django_app, max_entries=0)
    video = VideoFactory()
    for _ in range(3):
        assert call(app, f"/api/videos/{video.pk}").code == 200
    assert django_app.calls == 3


def test_an_answer_kept_for_https_is_not_served_to_plain_http(django_app: CountingDjango):
    video = VideoFactory()
    path = f"/api/videos/{video.pk}"
    with override_settings(
        SECURE_SSL_REDIRECT=True, SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https")
    ):
        # Django's security middleware reads its settings when built: a handler of its own.
        app = ResponseCache(CountingDjango(), max_entries=100, max_bytes=8 * 1024 * 1024)
        assert warm(app, path, HTTP_X_FORWARDED_PROTO="https").code == 200
        assert call(app, path, HTTP_X_FORWARDED_PROTO="http").code == 301
        assert call(app, path).code == 301
