"""The tiers against a real Redis: L1 and L2, coherence between processes, the stale-set fence,
stampede control, an expired entry served while one request refreshes it."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.test import override_settings

from tests.cache.conftest import in_threads, live, requires_redis, wait_for
from videoplatform.cache import remote
from videoplatform.cache.core import Tiers
from videoplatform.cache.local import MISSING, LocalTier

pytestmark = requires_redis


class Source:
    """A loader that counts its calls; ``value`` is what the "database" holds now."""

    def __init__(self, value: Any = "v1") -> None:
        self.value = value
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self) -> Any:
        with self._lock:
            self.calls += 1
        return self.value


# --- L1 on its own ---------------------------------------------------------------------------------


def test_l1_is_a_bounded_lru():
    l1 = LocalTier(max_entries=3)
    mark = l1.mark("video")
    for name in ("a", "b", "c"):
        assert l1.put(("video", name, ""), 0, name, 60, mark=mark)
    assert l1.get(("video", "a", ""), 0) == "a"  # a is now the most recently used
    l1.put(("video", "d", ""), 0, "d", 60, mark=mark)
    assert len(l1) == 3
    assert l1.get(("video", "b", ""), 0) is MISSING  # the least recently used went
    assert [l1.get(("video", n, ""), 0) for n in ("a", "c", "d")] == ["a", "c", "d"]


def test_an_answer_served_from_an_l1_entry_keeps_it_from_being_pushed_out():
    """The response cache serves its hottest answers without reading L1 (``holds`` alone): those
    entries are the most used, and entries read once must not push them out before them."""
    l1 = LocalTier(max_entries=3)
    mark = l1.mark("video")
    hot = l1.put(("video", "hot", ""), 0, "hot", 60, mark=mark)
    l1.put(("video", "b", ""), 0, "b", 60, mark=mark)
    l1.put(("video", "c", ""), 0, "c", 60, mark=mark)
    assert l1.holds(("video", "hot", ""), hot)  # an answer built from it is served
    l1.put(("video", "d", ""), 0, "d", 60, mark=mark)  # one more than the bound
    assert l1.holds(("video", "hot", ""), hot)
    assert l1.get(("video", "b", ""), 0) is MISSING  # the least recently used went instead
    assert l1.hottest(1) == [("video", "hot", "")]


def test_l1_entries_expire_and_belong_to_an_epoch(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("videoplatform.cache.local.time.monotonic", lambda: clock[0])
    l1 = LocalTier(max_entries=10)
    l1.put(("plan", "active", ""), 4, ["basic"], 300, mark=l1.mark("plan"))
    assert l1.get(("plan", "active", ""), 5) is MISSING  # another epoch: not valid
    l1.put(("plan", "active", ""), 4, ["basic"], 300, mark=l1.mark("plan"))
    clock[0] += 299
    assert l1.get(("plan", "active", ""), 4) == ["basic"]
    clock[0] += 2
    assert l1.get(("plan", "active", ""), 4) is MISSING


def test_what_was_built_from_an_l1_entry_outlives_a_refill_with_the_same_data(monkeypatch):
    """``holds`` is what the response cache asks before it serves a kept answer: an expiry
    refilled with equal data keeps the answer; new data, an invalidation, an eviction or another
    epoch retires it, even when the data that comes back is equal."""
    clock = [1000.0]
    monkeypatch.setattr("videoplatform.cache.local.time.monotonic", lambda: clock[0])
    l1 = LocalTier(max_entries=2)
    key = ("user", "usr_1", "")
    profile = {"username": "ann", "display_name": "Ann"}

    def refill(data: Any, epoch: int = 0) -> Any:
        return l1.put(key, epoch, data, 300, mark=l1.mark("user"))

    shown = refill(dict(profile))
    clock[0] += 301  # expired: no longer read, and what was built from it is not current
    assert l1.get(key, 0) is MISSING and not l1.holds(key, shown)
    refill(dict(profile))  # refilled with equal data (an equal copy, not the same object)
    assert l1.holds(key, shown)
    clock[0] += 100
    refill(dict(profile))  # refilled again before its time is up: still the same lineage
    assert l1.holds(key, shown)

    refill(dict(profile, display_name="Ann B."))  # the data changed
    assert not l1.holds(key, shown)
    shown = refill(dict(profile))
    assert l1.holds(key, shown)

    l1.invalidate_scopes("user", ["usr_1"])  # an invalidation, then the same data again
    refill(dict(profile))
    assert not l1.holds(key, shown)
    shown = l1.entry(key, 0)

    mark = l1.mark("video")
    l1.put(("video", "a", ""), 0, "a", 300, mark=mark)
    l1.put(("video", "b", ""), 0, "b", 300, mark=mark)  # pushes the profile out (2 entries)
    refill(dict(profile))
    assert not l1.holds(key, shown)
    shown = l1.entry(key, 0)

    refill(dict(profile), epoch=1)  # the kind moved to another epoch
    assert not l1.holds(key, shown)


def test_l1_refuses_a_value_read_before_an_invalidation():
    l1 = LocalTier(max_entries=10)
    mark = l1.mark("video")
    l1.invalidate_scopes("video", ["vid_1"])  # arrives while the read is in progress
    assert not l1.put(("video", "vid_1", ""), 0, "old", 60, mark=mark)
    assert l1.get(("video", "vid_1", ""), 0) is MISSING


def test_default_l1_limits_come_from_the_settings(settings):
    assert settings.CACHE_L1_MAX_ENTRIES == 10_000 and settings.CACHE_L1_TTL == 300
    assert settings.CACHE_TTLS == {
        "user": 3600,
        "video": 300,
        "subscription": 3600,
        "plan": 86400,
        "feed": 300,
        "media": 3600,
    }


# --- reads ---------------------------------------------------------------------------------------


def test_miss_then_l2_then_l1(this_process: Tiers, other_process: Tiers):
    source = Source("row")
    assert this_process.fetch("video", "vid_a", source) == "row"
    assert this_process.fetch("video", "vid_a", source) == "row"  # L1
    assert other_process.fetch("video", "vid_a", source) == "row"  # L2, shared
    assert source.calls == 1
    assert this_process.l1.get(("video", "vid_a", ""), this_process._epochs["video"]) == "row"


def test_absent_rows_are_cached_too(this_process: Tiers):
    source = Source(None)
    assert this_process.fetch("video", "vid_gone", source) is None
    assert this_process.fetch("video", "vid_gone", source) is None
    assert source.calls == 1


def test_junk_keys_are_never_cached(this_process: Tiers):
    source = Source("x")
    for _ in range(2):
        this_process.fetch("video", "vid with spaces{and braces}", source)
        this_process.fetch("video", "v" * 500, source)
    assert source.calls == 4
    assert not this_process.remote.scan("c:{video:vid with*")


# --- coherence -------------------------------------------------------------------------------------


def test_an_invalidation_reaches_every_process(this_process: Tiers, other_process: Tiers):
    source = Source("v1")
    other_process.fetch("video", "vid_b", source)
    other_process.fetch("video", "vid_b", source)  # now in the other process's L1
    key = ("video", "vid_b", "")
    assert other_process.l1.get(key, other_process._epochs["video"]) == "v1"

    source.value = "v2"
    this_process.invalidate("video", ["vid_b"])

    assert wait_for(lambda: other_process.l1.get(key, other_process._epochs["video"]) is MISSING)
    assert other_process.fetch("video", "vid_b", source) == "v2"


def test_write_through_puts_the_new_value_in_l2(this_process: Tiers, other_process: Tiers):
    source = Source("v1")
    other_process.fetch("video", "vid_c", source)
    source.value = "v2"
    this_process.invalidate("video", ["vid_c"], refresh=lambda scopes: {s: source() for s in scopes})
    calls = source.calls
    assert wait_for(lambda: other_process.fetch("video", "vid_c", source) == "v2")
    assert source.calls == calls  # read from L2: the writer stored it


def test_a_whole_kind_goes_in_every_process(this_process: Tiers, other_process: Tiers):
    plans, free = Source(["basic"]), Source((480, 1))
    for current in (this_process, other_process):
        current.fetch("plan", "active", plans)
        current.fetch("plan", "free", free)
    plans.value, free.value = ["basic", "premium"], (360, 1)

    this_process.invalidate_kind("plan")

    assert wait_for(lambda: other_process._epochs["plan"] == this_process._epochs["plan"])
    assert other_process.fetch("plan", "active", plans) == ["basic", "premium"]
    assert other_process.fetch("plan", "free", free) == (360, 1)


def test_a_process_that_loses_its_feed_flushes_l1_and_stops_using_it(redis_server_settings: Any):
    from videoplatform.cache import tiers as process_tiers

    current = live(process_tiers())
    source = Source("v1")
    current.fetch("user", "usr_a", source)
    current.fetch("user", "usr_a", source)
    assert len(current.l1) == 1

    # The server drops its subscribers (a failover, a network blip): messages sent meanwhile are lost.
    assert current.remote.client().client_kill_filter(_type="pubsub") >= 1

    assert wait_for(lambda: len(current.l1) == 0)
    # Back on its feed, it caches again.
    assert wait_for(current.feed.alive)
    current.fetch("user", "usr_a", source)
    current.fetch("user", "usr_a", source)
    assert current.l1.get(("user", "usr_a", ""), current._epochs["user"]) == "v1"


# --- no stale set ----------------------------------------------------------------------------------


def test_a_read_that_started_before_an_invalidation_does_not_store_its_old_value(
    this_process: Tiers, other_process: Tiers
):
    """The reader loads "old", the writer commits "new" and invalidates, then the reader stores."""
    loaded, release = threading.Event(), threading.Event()
    database = {"value": "old"}

    def slow_loader() -> str:
        value = database["value"]
        loaded.set()
        assert release.wait(5)
        return value

    reader = threading.Thread(target=lambda: this_process.fetch("video", "vid_race", slow_loader))
    reader.start()
    assert loaded.wait(5)
    database["value"] = "new"
    other_process.invalidate("video", ["vid_race"])  # the write commits here
    assert wait_for(lambda: this_process.l1.mark("video")[1] > 0)  # this process heard of it
    release.set()
    reader.join(5)

    # Neither tier took the old value.
    assert this_process.remote.read("video", "vid_race", "")[0] is None
    assert this_process.l1.get(("video", "vid_race", ""), this_process._epochs["video"]) is MISSING
    assert this_process.fetch("video", "vid_race", lambda: database["value"]) == "new"
    assert other_process.fetch("video", "vid_race", lambda: database["value"]) == "new"
    entry, generation, _ = this_process.remote.read("video", "vid_race", "")
    assert entry is not None and entry.data == "new" and entry.generation == generation


def test_a_read_that_started_before_a_whole_kind_went_does_not_survive_it(this_process: Tiers):
    loaded, release = threading.Event(), threading.Event()

    def slow_loader() -> str:
        loaded.set()
        assert release.wait(5)
        return "old"

    reader = threading.Thread(target=lambda: this_process.fetch("feed", "public", slow_loader, variant="p1"))
    reader.start()
    assert loaded.wait(5)
    this_process.invalidate_kind("feed")
    release.set()
    reader.join(5)
    assert this_process.fetch("feed", "public", lambda: "new", variant="p1") == "new"


# --- stampede control ------------------------------------------------------------------------------


def test_concurrent_misses_in_one_process_make_one_load(this_process: Tiers):
    calls = []

    def slow() -> str:
        calls.append(1)
        time.sleep(0.3)
        return "row"

    results = in_threads(16, lambda: this_process.fetch("video", "vid_hot", slow))
    assert results == ["row"] * 16
    assert len(calls) == 1


def test_concurrent_misses_in_several_processes_make_one_load(this_process: Tiers, other_process: Tiers):
    calls = []
    lock = threading.Lock()

    def slow() -> str:
        with lock:
            calls.append(1)
        time.sleep(0.3)
        return "row"

    processes = [this_process, other_process]
    counter = iter(range(100))
    results = in_threads(12, lambda: processes[next(counter) % 2].fetch("plan", "active", slow))
    assert results == ["row"] * 12
    assert len(calls) == 1


def test_an_expired_entry_is_served_while_one_request_refreshes_it(this_process: Tiers):
    """Past its TTL (within the grace period) an entry is refreshed by one request; the others
    get the previous value at once instead of queueing behind the database."""
    epoch = this_process._epochs["plan"]
    _, generation, _ = this_process.remote.read("plan", "active", "")
    expired = remote.Entry(epoch, generation, time.time() - 1, ["previous"])
    assert this_process.remote.store("plan", "active", "", expired, 30_000)

    loading, release = threading.Event(), threading.Event()

    def refresh() -> list[str]:
        loading.set()
        assert release.wait(5)
        return ["fresh"]

    refresher = threading.Thread(target=lambda: this_process.fetch("plan", "active", refresh))
    refresher.start()
    assert loading.wait(5)
    other = Tiers("default")  # another process asks meanwhile
    try:
        assert other.fetch("plan", "active", lambda: ["not this"]) == ["previous"]
    finally:
        other.stop()
    release.set()
    refresher.join(5)
    assert this_process.fetch("plan", "active", lambda: ["not this"]) == ["fresh"]


# --- transactions ------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_no_cache_inside_a_transaction_and_nothing_written_by_a_rollback(this_process: Tiers):
    from django.db import transaction

    from videoplatform import cache

    source = Source("committed")
    assert cache.fetch("video", "vid_t", source) == "committed"
    with pytest.raises(RuntimeError), transaction.atomic():
        assert not cache.active()
        cache.refresh_on_commit("video", ["vid_t"], lambda scopes: dict.fromkeys(scopes, "rolled back"))
        raise RuntimeError("the write fails")
    assert cache.active()
    assert cache.fetch("video", "vid_t", source) == "committed"
    assert source.calls == 1


# --- Redis unavailable -------------------------------------------------------------------------------


def _errors(kind: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("cache_errors_total", {"tier": "l2", "kind": kind}) or 0.0


def test_reads_go_to_the_database_while_redis_is_down(redis_server_settings: Any):
    from videoplatform.cache import tiers as process_tiers

    server, _ = redis_server_settings
    current = live(process_tiers())
    source = Source("row")
    assert current.fetch("video", "vid_d", source) == "row"
    assert current.fetch("video", "vid_d", source) == "row"
    errors_before = _errors("video")

    server.stop()
    source.value = "changed while Redis was down"
    assert wait_for(lambda: not current.feed.alive())
    assert current.fetch("video", "vid_d", source) == "changed while Redis was down"
    assert current.fetch("video", "vid_d", source) == "changed while Redis was down"
    assert _errors("video") > errors_before

    server.start()
    assert wait_for(current.feed.alive, timeout=15)

    def cached_again() -> bool:
        calls = source.calls
        current.fetch("video", "vid_d", source)
        current.fetch("video", "vid_d", source)
        return source.calls - calls <= 1

    assert wait_for(cached_again)


@pytest.fixture
def redis_server_settings(settings: Any) -> Any:
    from tests.support.processes import RedisServer

    server = RedisServer()
    server.start()
    caches = {alias: dict(config) for alias, config in settings.CACHES.items()}
    caches["default"] = {**caches["default"], "LOCATION": server.url}
    with override_settings(CACHES=caches):
        yield server, caches
    server.stop()


def test_concurrent_misses_make_one_load_even_while_redis_is_down(redis_server_settings: Any):
    from videoplatform.cache import tiers as process_tiers

    server, _ = redis_server_settings
    current = process_tiers()
    server.stop()
    calls = []

    def slow() -> str:
        calls.append(1)
        time.sleep(0.3)
        return "row"

    results = in_threads(12, lambda: current.fetch("subscription", "usr_x", slow))
    assert results == ["row"] * 12
    assert len(calls) == 1


def test_without_redis_the_tiers_pass_through(settings: Any):
    from videoplatform.cache import tiers as process_tiers

    caches = {**settings.CACHES, "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    with override_settings(CACHES=caches):
        current = process_tiers()
        source = Source("row")
        assert [current.fetch("video", "vid_p", source) for _ in range(3)] == ["row"] * 3
        assert source.calls == 3  # one process alone could cache, but not coherently with others
        current.invalidate("video", ["vid_p"])  # nothing to tell, nothing raised
        assert not current.feed.connected()
