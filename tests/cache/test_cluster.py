"""The Redis Cluster client (three masters on 127.0.0.1:7000-7002) under django-redis, and the
tiers on top of it."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings
from django_redis.cache import RedisCache
from redis.cluster import ClusterNode, RedisCluster

from tests.cache.conftest import live, wait_for
from videoplatform.cache.cluster import startup_nodes
from videoplatform.cache.core import Tiers
from videoplatform.cache.local import MISSING

NODES = "redis://127.0.0.1:7000,redis://127.0.0.1:7001,redis://127.0.0.1:7002"


def _cluster_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 7000), timeout=0.5).close()
    except OSError:
        return False
    return True


pytestmark = [
    pytest.mark.services,
    pytest.mark.skipif(not _cluster_up(), reason="needs the Redis Cluster on 127.0.0.1:7000-7002"),
]


def cluster_config(prefix: str, location: str = NODES) -> dict[str, Any]:
    return {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": location,
        "KEY_PREFIX": prefix,
        "OPTIONS": {
            "CLIENT_CLASS": "videoplatform.cache.cluster.RedisClusterClient",
            "SOCKET_CONNECT_TIMEOUT": 0.5,
            "SOCKET_TIMEOUT": 0.5,
            "IGNORE_EXCEPTIONS": True,
        },
    }


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def cluster_cache(prefix: str) -> Iterator[RedisCache]:
    config = cluster_config(prefix, location="redis://127.0.0.1:7001")  # one node is enough to start
    cache = RedisCache(config["LOCATION"], config)
    yield cache
    cache.clear()


@pytest.fixture
def raw() -> RedisCluster:
    return RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", 7000)])


def masters_holding(raw: RedisCluster, keys: list[str]) -> set[str]:
    return {raw.get_node_from_key(key).name for key in keys}


def test_location_lists_startup_nodes():
    assert [(n.host, n.port) for n in startup_nodes(NODES)] == [
        ("127.0.0.1", 7000),
        ("127.0.0.1", 7001),
        ("127.0.0.1", 7002),
    ]


def test_keys_over_every_master_through_get_many_set_many_delete_many(
    cluster_cache: RedisCache, raw: RedisCluster
):
    data = {f"item:{n}": {"n": n} for n in range(60)}
    cluster_cache.set_many(data, timeout=60)
    names = [cluster_cache.make_key(key) for key in data]
    assert masters_holding(raw, names) == {"127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"}

    assert cluster_cache.get_many([*data, "absent"]) == data
    assert cluster_cache.delete_many(list(data)[:30]) == 30
    assert len(cluster_cache.get_many(list(data))) == 30
    assert set(cluster_cache.keys("item:*")) == set(list(data)[30:])
    assert cluster_cache.delete_pattern("item:*") == 30
    assert cluster_cache.get_many(list(data)) == {}


def test_single_key_operations(cluster_cache: RedisCache):
    assert cluster_cache.add("counter", 1, timeout=60)
    assert not cluster_cache.add("counter", 5, timeout=60)
    assert cluster_cache.incr("counter", 4) == 5
    assert 0 < cluster_cache.ttl("counter") <= 60
    cluster_cache.set("thing", ["a", "b"], timeout=None)
    assert cluster_cache.get("thing") == ["a", "b"] and cluster_cache.ttl("thing") is None
    assert cluster_cache.touch("thing", 30) and cluster_cache.has_key("thing")
    with cluster_cache.lock("job", timeout=5):
        pass
    assert cluster_cache.delete("thing") and cluster_cache.get("thing") is None


def test_clear_deletes_only_this_caches_keys(cluster_cache: RedisCache, raw: RedisCluster, prefix: str):
    cluster_cache.set_many({f"k{n}": n for n in range(30)}, timeout=60)
    raw.set(f"other-{prefix}", "kept", ex=60)
    cluster_cache.clear()
    assert cluster_cache.get_many([f"k{n}" for n in range(30)]) == {}
    assert raw.get(f"other-{prefix}") == b"kept"
    raw.delete(f"other-{prefix}")


def test_an_unreachable_cluster_is_a_miss_not_an_error(prefix: str):
    config = cluster_config(prefix, location="redis://127.0.0.1:1")  # nothing listens there
    cache = RedisCache(config["LOCATION"], config)
    assert cache.get("x") is None
    assert cache.get_many(["x", "y"]) == {}
    cache.set("x", 1)  # ignored, not raised


# --- the tiers on the cluster ----------------------------------------------------------------------------


@pytest.fixture
def on_cluster(settings: Any, prefix: str) -> Iterator[None]:
    caches = {**settings.CACHES, "default": cluster_config(prefix)}
    with override_settings(CACHES=caches):
        yield
        from django.core.cache import caches as django_caches

        django_caches["default"].clear()


def test_tiers_on_the_cluster_keep_processes_coherent(on_cluster: None, raw: RedisCluster):
    first, second = live(Tiers("default")), live(Tiers("default"))
    try:
        assert first.remote.is_cluster()
        source = {"value": "v1"}
        ids = [f"vid_{n}" for n in range(12)]
        for video_id in ids:
            first.fetch("video", video_id, lambda: source["value"])
        entries = [first.remote.key(f"c:{{video:{video_id}}}:") for video_id in ids]
        assert len(masters_holding(raw, entries)) == 3  # spread over every master

        assert second.fetch("video", "vid_0", lambda: "not read") == "v1"  # L2 on the cluster
        second.fetch("video", "vid_0", lambda: "not read")  # and now in its L1
        source["value"] = "v2"
        first.invalidate("video", ["vid_0"], refresh=lambda scopes: dict.fromkeys(scopes, source["value"]))
        assert wait_for(lambda: second.l1.get(("video", "vid_0", ""), second._epochs["video"]) is MISSING)
        assert second.fetch("video", "vid_0", lambda: "not read") == "v2"

        profiles = second.fetch_many(
            "user", ["usr_a", "usr_b", "usr_c"], lambda ids: {i: i.upper() for i in ids}
        )
        assert profiles == {"usr_a": "USR_A", "usr_b": "USR_B", "usr_c": "USR_C"}
        assert first.fetch_many("user", ["usr_a", "usr_b", "usr_c"], lambda ids: {}) == profiles
    finally:
        first.stop()
        second.stop()


def test_operator_commands_reach_every_master(on_cluster: None):
    from django.core.management import call_command

    from videoplatform.cache import tiers

    current = live(tiers())
    for n in range(12):
        current.fetch("video", f"vid_{n}", lambda: "row")
    out = _run(call_command, "invalidate_cache", "video", "--dry-run")
    assert "Would invalidate every video entry: 12 in L2" in out
    out = _run(call_command, "invalidate_cache", "video")
    assert "Invalidated every video entry: 12 in L2" in out
    assert current.remote.scan("c:{video:*") == []
    assert "video" in _run(call_command, "cache_stats")


def _run(command: Any, *args: str) -> str:
    from io import StringIO

    out = StringIO()
    command(*args, stdout=out)
    return out.getvalue()
