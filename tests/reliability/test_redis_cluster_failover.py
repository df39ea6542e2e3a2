"""A master of the Redis Cluster (the L2 cache, one replica per master) SIGKILLed under a steady
mixed load: its replica takes over, no request fails (the cache's errors are misses that the
database answers), what was written to the dead master before is read from the promoted replica,
and the app caches in the cluster again. The standalone Redis (tokens, sessions, throttles) is
not touched: a token issued before is still accepted."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django_redis.cache import RedisCache
from redis.cluster import ClusterNode
from redis.cluster import RedisCluster as ClusterClient

from accounts import services
from bench.faults.redis_cluster import RedisCluster
from bench.loadgen import LoadGenerator, User
from tests.factories import DEFAULT_PASSWORD, UserFactory, VideoFactory
from tests.reliability.conftest import CLIENT_TIMEOUT, print_report
from tests.security.conftest import live_database_url
from tests.support.processes import RedisServer, base_env, gunicorn, http_get, wait_until
from videos.models import Video

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def cluster() -> Iterator[RedisCluster]:
    built = RedisCluster()
    try:
        built.start()
        yield built
    finally:
        built.stop()


@pytest.fixture
def unnoticed() -> Iterator[RedisCluster]:
    """A cluster slow to notice a dead node (60 s): a killed master stays in the slot map."""
    built = RedisCluster(node_timeout_ms=60_000)
    try:
        built.start()
        yield built
    finally:
        built.stop()


@pytest.fixture
def server(cluster: RedisCluster, tmp_path: Path) -> Iterator[str]:
    standalone = RedisServer()
    standalone.start()
    env = base_env(
        DJANGO_SETTINGS_MODULE="settings.test",
        DATABASE_URL=live_database_url(),
        REDIS_URL=standalone.url,
        REDIS_CLUSTER_URL=cluster.url,
        VAR_DIR=str(tmp_path / "var"),
        LOG_LEVEL="WARNING",
        UPLOADS_PER_DAY="1000000",
        TRANSCODE_MINUTES_PER_DAY="1000000",
    )
    try:
        with gunicorn(env, workers=2) as url:
            yield url
    finally:
        standalone.stop()


def _key_on(client: ClusterClient, port: int) -> str:
    """A key whose slot the master on ``port`` serves."""
    return next(f"probe:{n}" for n in range(10_000) if client.get_node_from_key(f"probe:{n}").port == port)


def test_a_cluster_master_killed_under_load(server: str, cluster: RedisCluster) -> None:
    account = UserFactory()
    token = services.token_issue(user=account).token
    users = [User(username=account.username, password=DEFAULT_PASSWORD, token=token, id=account.pk)]
    videos = [VideoFactory(ready=True).pk for _ in range(5)]
    client = ClusterClient(startup_nodes=[ClusterNode("127.0.0.1", p) for p in cluster.ports])
    victim = cluster.masters()[0]
    probe = _key_on(client, victim)
    client.set(probe, "written before the failure")
    # On its replica before the kill (replication is asynchronous; a replica still in its first
    # sync acknowledges nothing yet).
    master = redis.Redis(port=victim)
    assert wait_until(lambda: int(master.execute_command("WAIT", 1, 1000)) >= 1, timeout=60), (
        "the replica never acknowledged the write"
    )

    load = LoadGenerator(server, users=users, video_ids=videos, threads=4, timeout=CLIENT_TIMEOUT)
    load.start(duration=120)
    time.sleep(3)
    fault_at = load.now()
    cluster.kill(victim)
    failed_over = wait_until(lambda: cluster.healthy() and len(cluster.masters()) == 3, timeout=30)
    back_at = load.now()
    time.sleep(3)
    report = load.stop()
    print_report("redis cluster master killed", report, fault_at, back_at)

    assert failed_over, "no replica took over"
    assert report.between(fault_at, back_at).sent > 20, "the load ran through the failover"
    assert report.failed == 0, report.failures[:5]
    acknowledged = report.acknowledged_writes
    assert acknowledged and Video.objects.filter(pk__in=acknowledged).count() == len(acknowledged)

    fresh = ClusterClient(startup_nodes=[ClusterNode("127.0.0.1", p) for p in cluster.ports if p != victim])
    assert fresh.get(probe) == b"written before the failure"
    assert any(fresh.scan_iter(match="vp:default:*", count=1000)), "the app caches in the cluster again"
    status, _ = http_get(f"{server}/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert status == 200


@pytest.mark.parametrize(("options", "attempts"), [({}, 2), ({"RETRIES": 0}, 1), ({"RETRIES": 3}, 4)])
def test_a_dead_master_costs_a_cache_operation_one_retry_not_ten(
    unnoticed: RedisCluster, monkeypatch: pytest.MonkeyPatch, options: dict[str, int], attempts: int
) -> None:
    """Every request that touches a failing master waits out the client's attempts (a write's
    invalidation always tries): redis-py's default of ten, with backoff, held writes 3-6 s while
    a replica took over. The cache's client retries once, after a topology refresh."""
    cache = RedisCache(
        unnoticed.url,
        {
            "LOCATION": unnoticed.url,
            "KEY_PREFIX": "attempts",
            "OPTIONS": {
                "CLIENT_CLASS": "videoplatform.cache.cluster.RedisClusterClient",
                "SOCKET_CONNECT_TIMEOUT": 0.5,
                "SOCKET_TIMEOUT": 0.5,
                "IGNORE_EXCEPTIONS": True,
                **options,
            },
        },
    )
    client = cache.client.get_client()
    victim = unnoticed.masters()[0]
    on_victim = (f"k{n}" for n in range(10_000))
    key = next(k for k in on_victim if client.get_node_from_key(cache.make_key(k)).port == victim)
    cache.set(key, "before", timeout=60)
    unnoticed.kill(victim)

    sent: list[int] = []
    execute = ClusterClient._execute_command

    def counted(self: ClusterClient, target_node: ClusterNode, *args: object, **kwargs: object) -> object:
        sent.append(target_node.port)
        return execute(self, target_node, *args, **kwargs)

    monkeypatch.setattr(ClusterClient, "_execute_command", counted)
    assert cache.get(key) is None  # a miss, not an error
    assert sent == [victim] * attempts
    sent.clear()
    cache.set(key, "after", timeout=60)  # ignored, not raised
    assert sent == [victim] * attempts
