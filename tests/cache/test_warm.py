"""A new process's L1 filled from L2 with the keys the running processes use most (real Redis)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings

from tests.cache.conftest import live, requires_redis
from videoplatform.cache import warm
from videoplatform.cache.core import Tiers
from videoplatform.cache.local import LocalTier

pytestmark = requires_redis


class Source:
    """A loader that counts its calls (each one a database read the test would notice)."""

    def __init__(self, value: Any) -> None:
        self.value = value
        self.calls = 0

    def __call__(self) -> Any:
        self.calls += 1
        return self.value


@pytest.fixture
def new_process() -> Iterator[Tiers]:
    """Tiers just built, their L1 empty: a worker that has just started."""
    fresh = Tiers(settings.CACHE_TIERS_ALIAS)
    yield fresh
    fresh.stop()


def test_l1_lists_its_keys_most_recently_used_first():
    l1 = LocalTier(max_entries=10)
    mark = l1.mark("video")
    for name in ("a", "b", "c"):
        l1.put(("video", name, ""), 0, name, 60, mark=mark)
    l1.get(("video", "a", ""), 0)
    assert l1.hottest(10) == [("video", "a", ""), ("video", "c", ""), ("video", "b", "")]
    assert l1.hottest(1) == [("video", "a", "")]


def test_a_new_process_starts_with_the_running_processes_hot_entries(this_process: Tiers, new_process: Tiers):
    this_process.remote.client().delete(this_process.remote.key(warm.HOT_SET))
    sources = {f"vid_warm{n}": Source({"title": f"video {n}"}) for n in range(5)}
    for scope, source in sources.items():
        assert this_process.fetch("video", scope, source) == source.value
    page = Source(["vid_warm0", "vid_warm1"])
    this_process.fetch("feed", "public", page, variant="p2")
    assert warm.record(this_process) == 6

    warmed = warm.warm_l1(count=100, timeout=5, current=new_process)

    assert (warmed.wanted, warmed.kept) == (6, 6)
    assert len(new_process.l1) == 6
    # The new process answers them from its own memory: no database read, no Redis read.
    reads = []
    new_process.remote.read = lambda *a, **k: reads.append(a)  # type: ignore[method-assign]
    for scope, source in sources.items():
        assert new_process.fetch("video", scope, Source(None)) == source.value
    assert new_process.fetch("feed", "public", Source(None), variant="p2") == ["vid_warm0", "vid_warm1"]
    assert reads == []
    assert all(source.calls == 1 for source in sources.values()) and page.calls == 1


def test_the_warm_up_keeps_nothing_an_invalidation_replaced(this_process: Tiers, new_process: Tiers):
    this_process.remote.client().delete(this_process.remote.key(warm.HOT_SET))
    this_process.fetch("video", "vid_warm_old", Source({"title": "old"}))
    this_process.fetch("video", "vid_warm_kept", Source({"title": "kept"}))
    warm.record(this_process)
    this_process.invalidate("video", ["vid_warm_old"])  # a write after the report

    warmed = warm.warm_l1(count=100, timeout=5, current=new_process)

    assert (warmed.wanted, warmed.kept) == (2, 1)
    fresh = Source({"title": "new"})
    assert new_process.fetch("video", "vid_warm_old", fresh) == {"title": "new"}
    assert fresh.calls == 1  # read from the database, not the old entry
    assert new_process.fetch("video", "vid_warm_kept", Source(None)) == {"title": "kept"}


def test_the_hot_key_set_ignores_what_this_release_does_not_know(this_process: Tiers, new_process: Tiers):
    name = this_process.remote.key(warm.HOT_SET)
    client = this_process.remote.client()
    client.delete(name)
    this_process.fetch("plan", "active", Source(["basic"]))
    warm.record(this_process)
    client.zadd(name, {"nosuchkind|x|": 1e12, "video|bad scope|": 1e12, "junk": 1e12})

    warmed = warm.warm_l1(count=100, timeout=5, current=new_process)

    assert (warmed.wanted, warmed.kept) == (1, 1)
    assert new_process.fetch("plan", "active", Source(None)) == ["basic"]


def test_no_warm_up_when_switched_off(new_process: Tiers, settings: Any):
    settings.CACHE_HOT_KEYS = 0
    warmed = warm.warm_l1(current=live(new_process))
    assert warmed.kept == 0 and "off" in warmed.describe()
    assert warm.record(new_process) == 0
