"""A throwaway Redis Cluster on loopback: 3 masters with one replica each, whose masters a fault
run may kill (``cluster-node-timeout`` 2 s: a replica takes over about 3-4 s later). Used by
``bench/chaos.py`` and ``tests/reliability/test_redis_cluster_failover.py``."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import redis

from tests.support.processes import free_port, wait_until


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def node_port() -> int:
    """A free port whose cluster bus port (the port + 10000) is free and valid too."""
    while True:
        port = free_port()
        if port + 10000 <= 65535 and _bindable(port + 10000):
            return port


class RedisCluster:
    """Six redis-server nodes, 3 masters and 3 replicas (``redis-cli --cluster create``)."""

    def __init__(self, port_base: int = 0, node_timeout_ms: int = 2000) -> None:
        self.ports = [port_base + i for i in range(6)] if port_base else [node_port() for _ in range(6)]
        self.dir = Path(tempfile.mkdtemp(prefix="vp-cluster-"))
        self.node_timeout_ms = node_timeout_ms
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.url = ",".join(f"redis://127.0.0.1:{port}" for port in self.ports)

    def start_node(self, port: int) -> None:
        self.processes[port] = subprocess.Popen(
            [
                "redis-server", "--port", str(port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no",
                "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
                "--cluster-node-timeout", str(self.node_timeout_ms), "--dir", str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        assert wait_until(lambda: self.answers(port), timeout=30), f"redis-server :{port} did not start"

    def answers(self, port: int) -> bool:
        try:
            return bool(self.client(port).ping())
        except redis.RedisError:
            return False

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1)

    def start(self) -> None:
        for port in self.ports:
            self.start_node(port)
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
             "--cluster-replicas", "1", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        assert wait_until(self.healthy, timeout=30), "the cluster did not come up"

    def healthy(self) -> bool:
        alive = [port for port in self.ports if port in self.processes]
        with contextlib.suppress(redis.RedisError, IndexError):
            info = self.client(alive[0]).execute_command("CLUSTER INFO")
            return bool(info.get("cluster_state") == "ok")
        return False

    def masters(self) -> list[int]:
        found = []
        for port in list(self.processes):
            with contextlib.suppress(redis.RedisError):
                role = self.client(port).execute_command("ROLE")
                if role and role[0] in (b"master", "master"):
                    found.append(port)
        return sorted(found)

    def kill(self, port: int) -> None:
        process = self.processes.pop(port)
        process.kill()
        process.wait(timeout=10)

    def stop(self) -> None:
        for process in self.processes.values():
            process.kill()
            process.wait(timeout=10)
        self.processes.clear()
        shutil.rmtree(self.dir, ignore_errors=True)
