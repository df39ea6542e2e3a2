"""Read-your-writes by WAL position: with replay paused on the standby, a client that just wrote
still reads its own write (from the primary) while other clients read the replica's older copy;
once the replica has replayed the write, the writer is back on the replica."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.cache import caches
from django.db import transaction
from django.test.utils import override_settings
from rest_framework.test import APIClient

from tests.conftest import login_client
from tests.db.support import REPLICATED, queries_by_alias, replay_paused, wait_for_replay
from tests.factories import UserFactory, VideoFactory
from tests.support.processes import wait_until
from videoplatform.db import pin_user, routing
from videoplatform.db.lsn import UNKNOWN
from videoplatform.db.replicas import monitor
from videoplatform.db.routing import PIN_PREFIX, pin_keys, pinned_position, pins_exist, token_pin_key
from videoplatform.metrics import DB_READS_ROUTED
from videos.models import Video

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True, databases=REPLICATED)]


def routed(alias, reason):
    return DB_READS_ROUTED.labels(alias, reason)._value.get()


def _session_client(user):
    client = APIClient()
    client.force_login(user)
    return client


@pytest.mark.parametrize("make_client", [login_client, _session_client], ids=["bearer-token", "session"])
def test_the_writer_reads_its_write_while_others_read_the_replica(data_layer, make_client):
    owner, viewer = UserFactory(), UserFactory()
    video = VideoFactory(owner=owner, title="Before")
    writer, reader, anonymous = make_client(owner), login_client(viewer), APIClient()
    wait_for_replay(data_layer)

    with replay_paused(data_layer):
        response = writer.patch(f"/api/videos/{video.pk}", {"title": "After"}, format="json")
        assert response.status_code == 200, response.content

        with queries_by_alias() as writer_reads:
            mine = writer.get(f"/api/videos/{video.pk}")
        with queries_by_alias() as reader_reads:
            theirs = reader.get(f"/api/videos/{video.pk}")
        with queries_by_alias() as anonymous_reads:
            anonymous_view = anonymous.get(f"/api/videos/{video.pk}")

    assert mine.status_code == theirs.status_code == anonymous_view.status_code == 200
    assert mine.json()["title"] == "After"
    assert writer_reads.reads_by_alias["default"] >= 1
    assert writer_reads.by_alias["replica1"] == 0
    # The replica has not replayed the change: other clients still see the old title there.
    assert theirs.json()["title"] == anonymous_view.json()["title"] == "Before"
    assert reader_reads.reads_by_alias["replica1"] >= 1
    assert anonymous_reads.reads_by_alias["replica1"] >= 1
    assert anonymous_reads.by_alias["default"] == 0


def test_the_pin_lives_in_the_shared_cache_for_the_window(data_layer):
    owner = UserFactory()
    video = VideoFactory(owner=owner)
    writer = login_client(owner)
    token = writer._credentials["HTTP_AUTHORIZATION"].split()[1]

    response = writer.patch(f"/api/videos/{video.pk}", {"title": "Changed"}, format="json")
    assert response.status_code == 200

    keys = {token_pin_key(token), f"u:{owner.pk}"}
    assert pins_exist(keys)
    cache = caches["default"]
    if hasattr(cache, "ttl"):  # Redis: every pod sees the same key, for the window at most
        assert 0 < cache.ttl(PIN_PREFIX + token_pin_key(token)) <= settings.DB_READ_YOUR_WRITES_WINDOW


def test_the_writer_is_back_on_the_replica_once_it_replayed_the_write(data_layer):
    owner = UserFactory()
    video = VideoFactory(owner=owner)
    writer = login_client(owner)
    wait_for_replay(data_layer)

    with replay_paused(data_layer):
        assert writer.patch(f"/api/videos/{video.pk}", {"title": "Changed"}, format="json").status_code == 200
        with queries_by_alias() as behind:
            assert writer.get(f"/api/videos/{video.pk}").json()["title"] == "Changed"
        assert behind.by_alias["replica1"] == 0
    assert routed("default", "replica_behind") >= 1

    # No time window: as soon as the replica has replayed the write, the pin lets it serve.
    token = writer._credentials["HTTP_AUTHORIZATION"].split()[1]
    position = pinned_position({token_pin_key(token)})
    assert 0 < position < UNKNOWN
    assert wait_until(lambda: monitor.reached("replica1", position), timeout=30)
    with queries_by_alias() as caught_up:
        assert writer.get(f"/api/videos/{video.pk}").json()["title"] == "Changed"
    assert caught_up.reads_by_alias["replica1"] >= 1
    assert caught_up.by_alias["default"] == 0


def test_the_pin_expires_after_the_window(data_layer):
    owner = UserFactory()
    video = VideoFactory(owner=owner)
    writer = login_client(owner)
    token = writer._credentials["HTTP_AUTHORIZATION"].split()[1]
    with override_settings(DB_READ_YOUR_WRITES_WINDOW=1):
        assert writer.patch(f"/api/videos/{video.pk}", {"title": "Changed"}, format="json").status_code == 200
    assert pins_exist({token_pin_key(token)})
    assert wait_until(lambda: not pins_exist({token_pin_key(token)}), timeout=10)


def test_pin_user_pins_every_client_of_the_user(data_layer):
    owner = UserFactory()
    video = VideoFactory(owner=owner, title="Before")
    phone, laptop = login_client(owner), login_client(owner)
    wait_for_replay(data_layer)

    with replay_paused(data_layer):
        Video.objects.filter(pk=video.pk).update(title="Changed by a task")
        pin_user(owner.pk)  # e.g. a task changed this user's data

        for client in (phone, laptop):
            with queries_by_alias() as stats:
                assert client.get(f"/api/videos/{video.pk}").json()["title"] == "Changed by a task"
            assert stats.by_alias["replica1"] == 0


def test_pins_merge_by_maximum(data_layer):
    keys = {"t:merge-a", "u:merge-b"}
    pin_keys(keys, 5_000)
    pin_keys(["t:merge-a"], 3_000)  # a writer whose position was read earlier, arriving late
    assert pinned_position({"t:merge-a"}) == 5_000
    pin_keys(["u:merge-b"], 9_000)
    assert pinned_position({"t:merge-a"}) == 5_000
    assert pinned_position(keys) == 9_000
    assert pinned_position({"t:nobody"}) == 0


def test_a_pin_made_inside_a_transaction_waits_for_its_commit(data_layer):
    with transaction.atomic():
        Video.objects.filter(pk=VideoFactory().pk).update(title="In a transaction")
        pin_keys(["t:in-transaction"])
        assert not pins_exist({"t:in-transaction"})  # a position read now would not cover the commit
    assert 0 < pinned_position({"t:in-transaction"}) < UNKNOWN


def test_with_redis_down_pins_are_unreadable_and_reads_go_to_the_primary(data_layer):
    owner = UserFactory()
    video = VideoFactory(owner=owner, title="Before")
    writer, reader = login_client(owner), APIClient()
    wait_for_replay(data_layer)
    down = {**settings.CACHES, "default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}}
    if "django_redis" not in settings.CACHES["default"]["BACKEND"]:
        pytest.fail("this test needs the Redis cache (REDIS_URL)")

    with override_settings(CACHES=down):
        routing._pins_down_until = 0.0
        patched = writer.patch(f"/api/videos/{video.pk}", {"title": "After"}, format="json")
        assert patched.status_code == 200, patched.content  # the pin could not be written: no error
        with queries_by_alias() as writer_reads:
            assert writer.get(f"/api/videos/{video.pk}").json()["title"] == "After"
        with queries_by_alias() as reader_reads:
            assert reader.get(f"/api/videos/{video.pk}").status_code == 200
    routing._pins_down_until = 0.0
    # Unreadable pins: whoever may have written reads the primary; anonymous clients (no keys)
    # still read the replica.
    assert writer_reads.by_alias["replica1"] == 0
    assert writer_reads.reads_by_alias["default"] >= 1
    assert reader_reads.reads_by_alias["replica1"] >= 1
    assert routed("default", "pins_unavailable") >= 1
