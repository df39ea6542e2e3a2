"""Cache fills from replicas: each invalidation records its commit position with the scope's
generation, and a fill reads a replica only once that replica has replayed it."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test.utils import override_settings

from tests.db.support import REPLICA, REPLICATED, replay_paused, wait_for_replay
from tests.factories import UserFactory, VideoFactory
from tests.support.processes import wait_until
from videoplatform import cache
from videoplatform.cache.core import tiers
from videoplatform.cache.remote import UNKNOWN_POSITION, generation_key, generation_position
from videoplatform.db.lsn import commit_position
from videoplatform.db.replicas import monitor
from videoplatform.metrics import DB_READS_ROUTED
from videos.models import Video
from videos.selectors import video_get

pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True, databases=REPLICATED),
    pytest.mark.skipif(not settings.REDIS_URL, reason="the cache tiers need REDIS_URL"),
]


def routed(reason: str) -> float:
    return sum(DB_READS_ROUTED.labels(alias, reason)._value.get() for alias in ("default", REPLICA))


def fills(alias: str, reason: str) -> float:
    return DB_READS_ROUTED.labels(alias, reason)._value.get()


@pytest.fixture
def live_tiers():
    with override_settings(CACHE_TIERS_ENABLED=True):
        current = tiers()
        current.feed.ensure_started()
        assert wait_until(current.feed.alive, timeout=10)
        yield current
    cache.reset()


def test_generations_carry_the_highest_commit_position(live_tiers):
    remote = live_tiers.remote
    scope = "vid_merge_test"
    first = remote.bump(cache.VIDEO, scope, f"{5000:016x}")
    later = remote.bump(cache.VIDEO, scope, f"{3000:016x}")  # a writer that read its position earlier
    assert generation_position(first) == generation_position(later) == 5000
    assert later != first  # the counter still moved on: older entries are fenced out
    assert generation_position(remote.bump(cache.VIDEO, scope, f"{9000:016x}")) == 9000

    # A generation written before positions were recorded: its fills read the primary, until
    # the next bump records one.
    remote.client().set(remote.key(generation_key(cache.VIDEO, "vid_legacy")), "7")
    assert generation_position("7") == UNKNOWN_POSITION
    bumped = remote.bump(cache.VIDEO, "vid_legacy", f"{42:016x}")
    assert bumped == f"8:{42:016x}" and generation_position(bumped) == 42
    assert generation_position("") == 0  # never invalidated: any replica in rotation


def test_a_fill_reads_a_replica_only_once_it_replayed_the_invalidation(data_layer, live_tiers):
    owner = UserFactory()
    video = VideoFactory(owner=owner, title="Before")
    viewer = owner
    wait_for_replay(data_layer)
    monitor.check(REPLICA)

    # Never invalidated: the fill may read any replica in rotation.
    before = fills(REPLICA, "fill_replica")
    assert video_get(video_id=video.pk, viewer=viewer, fields=["title"]).title == "Before"
    assert fills(REPLICA, "fill_replica") == before + 1

    with replay_paused(data_layer):
        Video.objects.filter(pk=video.pk).update(title="After")
        live_tiers.invalidate(cache.VIDEO, [video.pk])  # what invalidate_on_commit runs after COMMIT
        primary_fills = fills("default", "fill_primary")
        # The replica still holds "Before": the fill must not freeze it into the entry.
        on_replica = data_layer.replica_sees("SELECT title FROM videos_video WHERE id = %s", (video.pk,))
        assert on_replica == "Before"
        assert video_get(video_id=video.pk, viewer=viewer, fields=["title"]).title == "After"
        assert fills("default", "fill_primary") == primary_fills + 1

    # Invalidated again: once the replica has replayed the position the generation carries, a
    # replica fills it.
    live_tiers.invalidate(cache.VIDEO, [video.pk])
    position = generation_position(live_tiers.remote.read(cache.VIDEO, video.pk, "")[1])
    assert 0 < position <= commit_position()
    assert wait_until(lambda: monitor.reached(REPLICA, position), timeout=30)
    replica_fills = fills(REPLICA, "fill_replica")
    assert video_get(video_id=video.pk, viewer=viewer, fields=["title"]).title == "After"
    assert fills(REPLICA, "fill_replica") == replica_fills + 1


def test_a_kind_invalidation_holds_fills_of_every_scope_to_its_position(data_layer, live_tiers):
    owner = UserFactory()
    video = VideoFactory(owner=owner, title="Before")
    wait_for_replay(data_layer)
    monitor.check(REPLICA)
    with replay_paused(data_layer):
        Video.objects.filter(pk=video.pk).update(title="After")
        live_tiers.invalidate_kind(cache.VIDEO)  # no scope generation moved; the epoch did
        primary_fills = fills("default", "fill_primary")
        assert video_get(video_id=video.pk, viewer=owner, fields=["title"]).title == "After"
        assert fills("default", "fill_primary") == primary_fills + 1


def test_the_write_through_refresh_reads_the_primary(data_layer, live_tiers, django_user_model):
    owner = UserFactory()
    video = VideoFactory(owner=owner, title="Before")
    wait_for_replay(data_layer)
    with replay_paused(data_layer):
        Video.objects.filter(pk=video.pk).update(title="Refreshed")
        from videos.selectors import _video_rows

        live_tiers.invalidate(cache.VIDEO, [video.pk], refresh=_video_rows)
        # The entry written through right after the commit holds the committed row.
        assert video_get(video_id=video.pk, viewer=owner, fields=["title"]).title == "Refreshed"
