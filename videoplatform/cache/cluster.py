"""A django-redis client for Redis Cluster, on redis-py's ``RedisCluster``.

django-redis has no cluster client and Django's own Redis backend cannot talk to a cluster.
This client plugs in as ``OPTIONS["CLIENT_CLASS"]`` of ``django_redis.cache.RedisCache``:

    "LOCATION": "redis://node-a:6379,redis://node-b:6379,redis://node-c:6379",
    "OPTIONS": {"CLIENT_CLASS": "videoplatform.cache.cluster.RedisClusterClient", ...}

``LOCATION`` lists startup nodes (one is enough; the client discovers the rest). Single-key
operations are routed by ``RedisCluster`` itself. Operations over several keys are split by
slot: ``get_many`` is one ``MGET`` per slot, ``set_many`` and ``delete_many`` one command per
key in a pipeline; scans (``keys``, ``iter_keys``, ``delete_pattern``) visit every master;
``clear`` deletes this cache's keys only (its ``KEY_PREFIX``) instead of flushing every master.
Every error of the cluster (unreachable nodes, a cluster that is down or resharding) reaches
django-redis as ``ConnectionInterrupted``, so ``IGNORE_EXCEPTIONS`` works as with one server.

A command is retried once after a connection error or ``CLUSTERDOWN`` (after a topology
refresh, so a command to a master that has just been replaced reaches its successor), not
redis-py's default ten times with backoff: a cache the database stands in for gives up in about
half a second, where ten attempts held every request that touched a failing master (a write's
invalidation, a read's fill) for 3 to 6 s while a replica took over. ``OPTIONS["RETRIES"]``
changes the count; ``OPTIONS["CLUSTER_KWARGS"]`` passes anything else to ``RedisCluster``.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import Any, ClassVar
from urllib.parse import urlsplit

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django_redis.client import DefaultClient
from django_redis.client.default import glob_escape
from django_redis.exceptions import ConnectionInterrupted
from redis.backoff import ExponentialWithJitterBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisClusterException, RedisError
from redis.retry import Retry

_CLUSTER_ERRORS = (RedisError, RedisClusterException, OSError)
_BATCH = 500
# Attempts after the first, and the most a retry waits (the backoff starts at 10 ms).
RETRIES = 1
_BACKOFF_BASE, _BACKOFF_CAP = 0.01, 0.1


def _translated(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: RedisClusterClient, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except ConnectionInterrupted:
            raise
        except _CLUSTER_ERRORS as exc:
            raise ConnectionInterrupted(connection=None) from exc

    return wrapper


def startup_nodes(location: str | Iterable[str]) -> list[ClusterNode]:
    """``redis://host:port`` URLs (a comma-separated string or a list) as cluster nodes."""
    urls = location.split(",") if isinstance(location, str) else list(location)
    nodes = []
    for url in urls:
        parts = urlsplit(url.strip() if "://" in url else f"redis://{url.strip()}")
        nodes.append(ClusterNode(parts.hostname or "127.0.0.1", parts.port or 6379))
    if not nodes:
        raise ValueError("A Redis Cluster location needs at least one node.")
    return nodes


class RedisClusterClient(DefaultClient):  # type: ignore[type-arg]
    # One RedisCluster (with its per-node connection pools) per location and process.
    _clusters: ClassVar[dict[tuple[int, str], RedisCluster]] = {}
    _clusters_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, server: Any, params: dict[str, Any], backend: Any) -> None:
        super().__init__(server, params, backend)
        self._location = ",".join(self._server)
        self._clients = [None]

    # --- connections ------------------------------------------------------------------
    def _cluster_kwargs(self) -> dict[str, Any]:
        first = urlsplit(self._server[0] if "://" in self._server[0] else f"redis://{self._server[0]}")
        retries = int(self._options.get("RETRIES", RETRIES))
        kwargs: dict[str, Any] = {
            "startup_nodes": startup_nodes(self._server),
            "require_full_coverage": True,
            "retry": Retry(ExponentialWithJitterBackoff(cap=_BACKOFF_CAP, base=_BACKOFF_BASE), retries),
        }
        username = self._options.get("USERNAME") or first.username
        password = self._options.get("PASSWORD") or first.password
        if username:
            kwargs["username"] = username
        if password:
            kwargs["password"] = password
        for option, argument in (
            ("SOCKET_TIMEOUT", "socket_timeout"),
            ("SOCKET_CONNECT_TIMEOUT", "socket_connect_timeout"),
        ):
            if self._options.get(option):
                kwargs[argument] = self._options[option]
        kwargs.update(self._options.get("CLUSTER_KWARGS", {}))
        return kwargs

    def connect(self, index: int = 0) -> Any:
        key = (os.getpid(), self._location)
        cluster = self._clusters.get(key)
        if cluster is None:
            with self._clusters_lock:
                cluster = self._clusters.get(key)
                if cluster is None:
                    try:
                        cluster = RedisCluster(**self._cluster_kwargs())
                    except _CLUSTER_ERRORS as exc:
                        raise ConnectionInterrupted(connection=None) from exc
                    self._clusters[key] = cluster
        return cluster

    def get_client(self, write: bool = True, tried: list[int] | None = None) -> Any:
        if self._clients[0] is None:
            self._clients[0] = self.connect(0)
        return self._clients[0]

    def get_client_with_index(self, write: bool = True, tried: list[int] | None = None) -> tuple[Any, int]:
        return self.get_client(write), 0

    def disconnect(self, index: int = 0, client: Any = None) -> None:
        # The cluster client is shared by every cache of the process; it stays open.
        self._clients = [None]

    def do_close_clients(self) -> None:
        self._clients = [None]

    # --- operations over several keys -------------------------------------------------
    def get_many(
        self, keys: Collection[str], version: int | None = None, client: Any = None
    ) -> dict[str, Any]:
        if not keys:
            return {}
        client = client or self.get_client(write=False)
        names = {self.make_key(key, version=version): key for key in keys}
        values = client.mget_nonatomic(list(names))
        return {
            names[name]: self.decode(value)
            for name, value in zip(names, values, strict=True)
            if value is not None
        }

    def set_many(
        self,
        data: dict[str, Any],
        timeout: float | None = DEFAULT_TIMEOUT,
        version: int | None = None,
        client: Any = None,
    ) -> None:
        if not data:
            return
        client = client or self.get_client(write=True)
        if timeout is DEFAULT_TIMEOUT:
            timeout = self._backend.default_timeout
        if timeout is not None and timeout <= 0:
            self.delete_many(list(data), version=version, client=client)
            return
        pipe = client.pipeline(transaction=False)
        for key, value in data.items():
            name = self.make_key(key, version=version)
            if timeout is None:
                pipe.set(name, self.encode(value))
            else:
                pipe.set(name, self.encode(value), px=int(timeout * 1000))
        pipe.execute()

    def delete_many(self, keys: Iterable[str], version: int | None = None, client: Any = None) -> int:
        names = [self.make_key(key, version=version) for key in keys]
        if not names:
            return 0
        return self._delete_names(client or self.get_client(write=True), names)

    def _delete_names(self, client: Any, names: list[Any]) -> int:
        deleted = 0
        for start in range(0, len(names), _BATCH):
            pipe = client.pipeline(transaction=False)
            for name in names[start : start + _BATCH]:
                pipe.delete(name)
            deleted += sum(int(result) for result in pipe.execute())
        return deleted

    def _scan(self, client: Any, pattern: str, itersize: int | None = None) -> Iterator[Any]:
        return client.scan_iter(match=pattern, count=itersize or _BATCH, target_nodes=RedisCluster.PRIMARIES)

    def clear(self, client: Any = None) -> None:
        client = client or self.get_client(write=True)
        mine = f"{glob_escape(self._backend.key_prefix)}:*"  # this cache's keys, of every version
        self._delete_names(client, list(self._scan(client, mine)))

    def delete_pattern(
        self,
        pattern: str,
        version: int | None = None,
        prefix: str | None = None,
        client: Any = None,
        itersize: int | None = None,
    ) -> int:
        client = client or self.get_client(write=True)
        full = self.make_pattern(pattern, version=version, prefix=prefix)
        return self._delete_names(client, list(self._scan(client, str(full), itersize)))

    def iter_keys(
        self, search: str, itersize: int | None = None, client: Any = None, version: int | None = None
    ) -> Iterator[str]:
        client = client or self.get_client(write=False)
        for name in self._scan(client, str(self.make_pattern(search, version=version)), itersize):
            yield self.reverse_key(name.decode() if isinstance(name, bytes) else name)

    def keys(self, search: str, version: int | None = None, client: Any = None) -> list[Any]:
        return list(self.iter_keys(search, client=client, version=version))


# Every public operation reports cluster errors the way django-redis expects.
for _name in (
    "set",
    "add",
    "get",
    "delete",
    "incr",
    "decr",
    "incr_version",
    "has_key",
    "ttl",
    "pttl",
    "expire",
    "pexpire",
    "expire_at",
    "pexpire_at",
    "persist",
    "touch",
    "lock",
    "get_many",
    "set_many",
    "delete_many",
    "clear",
    "delete_pattern",
    "keys",
    "get_client",
):
    setattr(RedisClusterClient, _name, _translated(getattr(RedisClusterClient, _name)))
