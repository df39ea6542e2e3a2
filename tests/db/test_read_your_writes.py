"""Read-your-writes: with replay paused on the standby, a client that just wrote still reads
its own write (from the primary) while other clients read the replica's older copy."""

from __future__ import annotations

import pytest
from django.core.cache import caches
from django.test.utils import override_settings
from rest_framework.test import APIClient

from tests.conftest import login_client
from tests.db.support import REPLICATED, queries_by_alias, replay_paused, wait_for_replay
from tests.factories import UserFactory, VideoFactory
from tests.support.processes import wait_until
from videoplatform.db import pin_user
from videoplatform.db.routing import PIN_PREFIX, pins_exist, token_pin_key

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True, databases=REPLICATED)]


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
        assert 0 < cache.ttl(PIN_PREFIX + token_pin_key(token)) <= 15


def test_the_pin_expires_after_the_window(data_layer):
    owner = UserFactory()
    video = VideoFactory(owner=owner)
    writer = login_client(owner)
    with override_settings(DB_READ_YOUR_WRITES_WINDOW=1):
        assert writer.patch(f"/api/videos/{video.pk}", {"title": "Changed"}, format="json").status_code == 200
    wait_for_replay(data_layer)

    with queries_by_alias() as pinned:
        assert writer.get(f"/api/videos/{video.pk}").status_code == 200
    assert pinned.by_alias["replica1"] == 0

    token = writer._credentials["HTTP_AUTHORIZATION"].split()[1]
    assert wait_until(lambda: not pins_exist({token_pin_key(token)}), timeout=10)
    with queries_by_alias() as unpinned:
        assert writer.get(f"/api/videos/{video.pk}").status_code == 200
    assert unpinned.reads_by_alias["replica1"] >= 1
    assert unpinned.by_alias["default"] == 0


def test_pin_user_pins_every_client_of_the_user(data_layer):
    owner = UserFactory()
    video = VideoFactory(owner=owner)
    phone, laptop = login_client(owner), login_client(owner)
    wait_for_replay(data_layer)

    pin_user(owner.pk)  # e.g. a task changed this user's data

    for client in (phone, laptop):
        with queries_by_alias() as stats:
            assert client.get(f"/api/videos/{video.pk}").status_code == 200
        assert stats.by_alias["replica1"] == 0
