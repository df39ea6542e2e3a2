"""Bearer-token lookups by WAL position, and in-process answers for pinned clients, on the real
standby: a token lookup that misses the tokens cache reads a replica that has replayed the
token's pin and the last revocation, else the primary; a revoked token is refused even when its
cache marker is gone; a client pinned past an L1 entry does not get it.

None of these tests pause replay on the standby: a replica "behind" is a pin set past what it
has replayed.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.cache import caches
from django.test.utils import override_settings
from rest_framework.test import APIClient

from accounts import services, token_cache
from accounts.selectors import TokenRejected, token_user_get
from tests.conftest import login_client
from tests.db.support import REPLICA, REPLICATED, queries_by_alias, wait_for_replay
from tests.factories import UserFactory, VideoFactory
from tests.support.processes import wait_until
from videoplatform import cache
from videoplatform.cache.core import tiers
from videoplatform.db import routing
from videoplatform.db.lsn import UNKNOWN, commit_position
from videoplatform.db.replicas import monitor
from videoplatform.db.routing import (
    PIN_CACHE,
    PIN_PREFIX,
    REVOCATIONS_KEY,
    new_token_pin_key,
    pin_keys,
    pinned_position,
    routing_context,
    token_pin_key,
)
from videoplatform.metrics import DB_READS_ROUTED
from videos.models import Video

pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True, databases=REPLICATED),
    pytest.mark.skipif(not settings.REDIS_URL, reason="token lookups by position need Redis (REDIS_URL)"),
]


def routed(alias: str, reason: str) -> float:
    return DB_READS_ROUTED.labels(alias, reason)._value.get()


def token_of(client: APIClient) -> str:
    return str(client._credentials["HTTP_AUTHORIZATION"].split()[1])


def forget_cached(token: str) -> None:
    """The token's entry leaves the tokens cache (evicted, expired, Redis restarted)."""
    token_cache.tokens_cache().delete(token_cache.cache_key(token_cache.token_digest(token)))


def revocations_position() -> int | None:
    return pinned_position({REVOCATIONS_KEY}) or None


def lookup(token: str):
    with routing_context(), queries_by_alias() as stats:
        user, _ = token_user_get(token=token)
    return user, stats


@pytest.fixture(autouse=True)
def _revocations_recorded():
    """Each test starts with the revocation record at the primary's position (as after any
    revocation) and leaves none behind."""
    caches[PIN_CACHE].delete(PIN_PREFIX + REVOCATIONS_KEY)
    routing.revocation_recorded(commit_position())
    yield
    caches[PIN_CACHE].delete(PIN_PREFIX + REVOCATIONS_KEY)


def caught_up(data_layer) -> None:
    """The replica is in rotation and has replayed every commit so far (by the primary's insert
    position, which may be ahead of its write position)."""
    wait_for_replay(data_layer)
    monitor.check(REPLICA)
    target = commit_position()
    assert wait_until(lambda: monitor.reached(REPLICA, target), timeout=30)


def test_a_token_lookup_reads_a_replica_that_has_replayed_its_pin(data_layer):
    owner = UserFactory()
    token = token_of(login_client(owner))
    caught_up(data_layer)
    forget_cached(token)

    before = routed(REPLICA, "token_replica")
    user, stats = lookup(token)
    assert user.pk == owner.pk
    assert stats.reads_by_alias[REPLICA] == 1
    assert stats.reads_by_alias["default"] == 0
    assert routed(REPLICA, "token_replica") == before + 1

    # Cached now: the next check reads no database at all.
    _, again = lookup(token)
    assert again.queries == 0


def test_a_token_pinned_past_the_replica_is_read_from_the_primary(data_layer):
    owner = UserFactory()
    token = token_of(login_client(owner))
    caught_up(data_layer)
    forget_cached(token)
    pin_keys([token_pin_key(token)], monitor.known(REPLICA) + 10**12)  # far past any replay

    before = routed("default", "token_behind")
    user, stats = lookup(token)
    assert user.pk == owner.pk
    assert stats.reads_by_alias[REPLICA] == 0
    assert stats.reads_by_alias["default"] == 1
    assert routed("default", "token_behind") == before + 1


def test_a_new_token_is_pinned_to_the_commit_that_created_it(data_layer):
    owner = UserFactory()
    before = commit_position()
    token = token_of(login_client(owner))
    pin = pinned_position({new_token_pin_key(token)})
    assert before < pin < UNKNOWN
    # The token's row only: the client is not held to it for its other reads.
    assert pinned_position({token_pin_key(token)}) == 0
    # A replica that has replayed the pin has the token's row.
    assert wait_until(lambda: monitor.reached(REPLICA, pin), timeout=30)
    digest = token_cache.token_digest(token)
    assert (
        data_layer.replica_sees("SELECT count(*) FROM accounts_authtoken WHERE digest = %s", (digest,)) == 1
    )


def test_a_revoked_token_is_refused_even_when_its_marker_is_lost(data_layer):
    owner = UserFactory()
    client = login_client(owner)
    token = token_of(client)
    assert client.get("/api/auth/me").status_code == 200  # its snapshot is cached now
    services.token_revoke(digest=token_cache.token_digest(token))
    revoked_at = commit_position()  # read after the revocation's commit: at or past it

    recorded = revocations_position()
    assert recorded is not None and recorded <= revoked_at
    # A replica may serve lookups only once it has replayed the revocation.
    caught_up(data_layer)
    assert monitor.known(REPLICA) >= recorded
    assert (
        data_layer.replica_sees(
            "SELECT count(*) FROM accounts_authtoken WHERE digest = %s", (token_cache.token_digest(token),)
        )
        == 0
    )

    forget_cached(token)  # the REVOKED marker is gone: the lookup reads the database
    with pytest.raises(TokenRejected):
        lookup(token)
    forget_cached(token)
    assert client.get("/api/auth/me").status_code == 401


def test_a_lookup_needs_a_replica_past_the_last_revocation(data_layer):
    owner = UserFactory()
    token = token_of(login_client(owner))
    caught_up(data_layer)
    forget_cached(token)
    routing.revocation_recorded(monitor.known(REPLICA) + 10**12)  # a revocation no replica has replayed

    user, stats = lookup(token)
    assert user.pk == owner.pk
    assert stats.reads_by_alias[REPLICA] == 0
    assert stats.reads_by_alias["default"] == 1


def test_a_lost_revocation_record_sends_lookups_to_the_primary_and_is_re_established(data_layer):
    owner = UserFactory()
    token = token_of(login_client(owner))
    caught_up(data_layer)
    forget_cached(token)
    caches[PIN_CACHE].delete(PIN_PREFIX + REVOCATIONS_KEY)  # Redis restarted, say
    floor = commit_position()

    before = routed("default", "token_unknown")
    user, stats = lookup(token)
    assert user.pk == owner.pk
    assert stats.reads_by_alias[REPLICA] == 0
    assert routed("default", "token_unknown") == before + 1
    # The primary's position then covered every revocation committed so far.
    reestablished = revocations_position()
    assert reestablished is not None and floor <= reestablished < UNKNOWN


def test_a_user_change_fences_tokens_with_its_commit_position(data_layer):
    owner = UserFactory(display_name="Before")
    client = login_client(owner)
    token = token_of(client)
    assert client.get("/api/auth/me").status_code == 200
    services.user_update(user=owner, display_name="After")
    changed_at = commit_position()

    marker = token_cache.tokens_cache().get(token_cache.cache_key(token_cache.token_digest(token)))
    position = token_cache.stale_position(marker)
    assert position is not None and 0 < position <= changed_at
    caught_up(data_layer)
    user, stats = lookup(token)
    assert user.display_name == "After"
    assert stats.reads_by_alias[REPLICA] == 1  # the replica has replayed the change
    # Still fenced: what was read is not cached until the fence lapses.
    assert (
        token_cache.stale_position(
            token_cache.tokens_cache().get(token_cache.cache_key(token_cache.token_digest(token)))
        )
        == position
    )


def test_with_the_pins_unreadable_token_lookups_read_the_primary(data_layer):
    owner = UserFactory()
    token = token_of(login_client(owner))
    caught_up(data_layer)
    forget_cached(token)
    down = {**settings.CACHES, "default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}}
    with override_settings(CACHES=down):
        routing._pins_down_until = 0.0
        user, stats = lookup(token)
    routing._pins_down_until = 0.0
    assert user.pk == owner.pk
    assert stats.reads_by_alias[REPLICA] == 0
    assert stats.reads_by_alias["default"] == 1


# --- L1 and pinned clients -----------------------------------------------------------------


@pytest.fixture
def live_tiers():
    with override_settings(CACHE_TIERS_ENABLED=True):
        current = tiers()
        current.feed.ensure_started()
        assert wait_until(current.feed.alive, timeout=10)
        yield current
    cache.reset()


def test_a_client_pinned_past_an_l1_entry_reads_past_it(data_layer, live_tiers):
    owner = UserFactory()
    video = VideoFactory(owner=owner, title="Before")
    writer, anonymous = login_client(owner), APIClient()
    caught_up(data_layer)
    assert anonymous.get(f"/api/videos/{video.pk}").json()["title"] == "Before"
    assert live_tiers.l1.get((cache.VIDEO, video.pk, ""), live_tiers._epoch(cache.VIDEO, True)) is not None

    # Another pod's write: committed, its scope's generation bumped with the commit position and
    # its writer pinned there; its invalidation message has not reached this process yet.
    Video.objects.filter(pk=video.pk).update(title="After")
    position = commit_position()
    live_tiers.remote.bump(cache.VIDEO, video.pk, f"{position:016x}")
    pin_keys([token_pin_key(token_of(writer))], position)
    caught_up(data_layer)

    # The writer reads its write (through L2 and a fill from a replica that has replayed it) ...
    assert writer.get(f"/api/videos/{video.pk}").json()["title"] == "After"
    # ... and is then served from L1 again: the entry now reflects its pin.
    entry = live_tiers.l1.entry((cache.VIDEO, video.pk, ""), live_tiers._epoch(cache.VIDEO, True))
    assert entry is not None and entry.position >= position
    with queries_by_alias() as stats:
        assert writer.get(f"/api/videos/{video.pk}").json()["title"] == "After"
    assert stats.queries == 0


def test_a_shared_answer_is_not_served_to_a_client_pinned_past_it(data_layer, live_tiers):
    from videoplatform.entry.response_cache import Answer

    owner = UserFactory()
    video = VideoFactory(owner=owner, title="Before")
    token = token_of(login_client(owner))
    caught_up(data_layer)
    login_pin = commit_position()
    pin_keys([token_pin_key(token)], login_pin)  # the client wrote
    epoch = live_tiers._epoch(cache.VIDEO, True)
    key = (cache.VIDEO, video.pk, "")
    mark = live_tiers.l1.mark(cache.VIDEO)
    held = live_tiers.l1.put(key, epoch, {"title": "Before"}, 60, mark=mark, position=login_pin)
    assert held is not None
    answer = Answer("200 OK", [], b"Before", [(live_tiers, key, held)], "api/videos/<str:video_id>")
    assert answer.current() and answer.position == login_pin

    with routing_context() as context:
        token_user_get(token=token)  # the token check reads the token's pin with its entry
        assert context.local_lsn() == login_pin <= answer.position  # the answer may be served
    pin_keys([token_pin_key(token)], login_pin + 10)  # and wrote again, elsewhere
    with routing_context() as context, queries_by_alias() as stats:
        token_user_get(token=token)
        assert context.local_lsn() == login_pin + 10 > answer.position  # _serve hands it to Django
    assert stats.queries == 0


def test_a_writer_reading_through_another_process_is_not_served_a_kept_answer(data_layer, live_tiers):
    from django.core.handlers.wsgi import WSGIHandler
    from django.test import RequestFactory

    from videoplatform.entry.response_cache import ResponseCache, read_body

    django_calls = []

    def django_app(environ, start_response):
        django_calls.append(environ["PATH_INFO"])
        return WSGIHandler()(environ, start_response)

    app = ResponseCache(django_app, max_entries=100, max_bytes=8 * 1024 * 1024)

    def title(authorization: str) -> str:
        environ = RequestFactory()._base_environ(
            PATH_INFO=f"/api/videos/{video.pk}", REQUEST_METHOD="GET", HTTP_AUTHORIZATION=authorization
        )
        body = read_body(app(environ, lambda status, headers, exc_info=None: None))
        import json

        return str(json.loads(body)["title"])

    owner = UserFactory()
    video = VideoFactory(owner=owner, title="Before")
    writer = login_client(owner)
    authorization = writer._credentials["HTTP_AUTHORIZATION"]
    caught_up(data_layer)
    for _ in range(3):
        assert title(authorization) == "Before"
    served_from_cache = len(django_calls)
    assert title(authorization) == "Before" and len(django_calls) == served_from_cache  # kept

    # The writer changes the video through another pod: committed, generation bumped with the
    # commit position, the writer pinned there; this process has not heard of it yet.
    Video.objects.filter(pk=video.pk).update(title="After")
    position = commit_position()
    live_tiers.remote.bump(cache.VIDEO, video.pk, f"{position:016x}")
    pin_keys([token_pin_key(token_of(writer))], position)
    caught_up(data_layer)

    assert title(authorization) == "After"
    assert len(django_calls) == served_from_cache + 1  # Django answered, from L2 and a fresh fill
