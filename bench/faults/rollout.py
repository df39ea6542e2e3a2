"""A rolling restart of the API as Kubernetes does it, on loopback, with the numbers of the manifests.

- ``Balancer`` stands for the Service (kube-proxy): each new TCP connection goes to one of the
  ready endpoints, round robin; an established connection stays with its pod until one side
  closes it (keep-alive connections are not moved by an endpoint change, as with kube-proxy).
- ``Pod`` is one gunicorn (the shipped ``gunicorn.conf.py``) on its own port.
- ``Deployment.rolling_restart`` follows ``RollingUpdate`` with ``maxUnavailable: 0``: a new pod
  is started, joins the endpoints only once its readiness probe (``/ready``) passes, then an old
  pod is terminated: it leaves the endpoints after ``propagation`` seconds (the endpoint change
  reaching every node) while its ``preStop`` sleep runs, then gets SIGTERM (gunicorn finishes
  in-flight requests and answers requests on kept-alive connections with ``Connection: close``
  within ``graceful_timeout``) and SIGKILL after ``terminationGracePeriodSeconds``.
- ``Deployment.reload`` is the path without Kubernetes: new gunicorn workers (new code) replace
  the old ones on the same listening socket, by SIGHUP or by a TTIN/TTOU rotation.

Used by ``python -m bench.faults rollout``, ``bench/chaos.py`` and
``tests/reliability/test_rolling_restart.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.faults.stack import Gunicorn
from tests.support.processes import free_port, http_get, wait_until

# The manifests' values (k8s/base/api/deployment.yaml): preStop sleep, termination grace period,
# readiness probe period.
PRE_STOP = 10.0
GRACE = 45.0
PROBE_PERIOD = 5.0


class Balancer:
    """kube-proxy in miniature: TCP, round robin over the ready endpoints, connections pinned."""

    def __init__(self, port: int = 0) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._endpoints: list[int] = []
        self._counter = itertools.count()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="balancer")
        self._server: asyncio.Server | None = None
        self.connections = 0
        self.refused = 0  # connections that found no endpoint or a closed port

    def start(self) -> None:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._serve(), self._loop)
        future.result(timeout=10)

    async def _serve(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, backlog=1024)

    def set_endpoints(self, ports: list[int]) -> None:
        self._endpoints = list(ports)

    @property
    def endpoints(self) -> list[int]:
        return list(self._endpoints)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        ports = self._endpoints
        if not ports:
            self.refused += 1
            writer.transport.abort()
            return
        port = ports[next(self._counter) % len(ports)]
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            self.refused += 1
            writer.transport.abort()
            return
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        for side in (writer, up_writer):
            side.close()

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            sink.transport.abort()  # a reset travels on as a reset
            return
        with contextlib.suppress(OSError, RuntimeError):
            if sink.can_write_eof():
                sink.write_eof()  # a FIN travels on as a FIN

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            current = asyncio.current_task()
            for task in asyncio.all_tasks():
                if task is not current:
                    task.cancel()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)


class Pod:
    """One API pod: a gunicorn of its own."""

    def __init__(self, env: dict[str, str], name: str, workers: int, log: Path | None = None) -> None:
        self.name = name
        self.server = Gunicorn(env, workers=workers, log=log)
        self.port = self.server.port
        self.started_at = 0.0

    def start(self) -> None:
        self.server.start()
        self.started_at = time.monotonic()

    def ready(self) -> bool:
        try:
            return http_get(f"{self.server.url}/ready", timeout=2)[0] == 200
        except OSError:
            return False

    @property
    def pid(self) -> int:
        return self.server.process.pid if self.server.process else 0

    @property
    def workers(self) -> list[int]:
        return self.server.workers

    def logged_ready(self, pid: int) -> bool:
        """Whether worker ``pid`` has loaded the application (gunicorn.conf.py's post_worker_init)."""
        return f"Worker ready (pid: {pid})" in self.server.log.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        if self.server.process is not None:
            self.server.process.send_signal(sig)

    def terminate(self, grace: float) -> float:
        """SIGTERM, SIGKILL after ``grace`` seconds; returns how long the pod took to exit."""
        process = self.server.process
        if process is None:
            return 0.0
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        self.server.process = None
        return time.monotonic() - started

    def destroy(self) -> None:
        self.server.destroy()


@dataclass
class Deployment:
    """API pods behind a ``Balancer``, replaced as a RollingUpdate with maxUnavailable 0 would."""

    env: dict[str, str]
    replicas: int = 2
    workers: int = 1
    pre_stop: float = PRE_STOP
    grace: float = GRACE
    probe_period: float = PROBE_PERIOD
    propagation: float = 1.0
    port: int = 0
    log_dir: Path | None = None  # keeps every pod's gunicorn log there (else removed with the pod)
    pods: list[Pod] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    _serial: itertools.count[int] = field(default_factory=itertools.count)
    _terminations: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.balancer = Balancer(self.port)
        self.url = self.balancer.url

    def _new_pod(self) -> Pod:
        name = f"api-{next(self._serial)}"
        return Pod(self.env, name, self.workers, self.log_dir / f"{name}.log" if self.log_dir else None)

    def start(self) -> None:
        self.balancer.start()
        for _ in range(self.replicas):
            pod = self._new_pod()
            pod.start()
            if not wait_until(pod.ready, timeout=60, interval=0.5):
                raise RuntimeError(f"{pod.name} never became ready")
            self.pods.append(pod)
        self.balancer.set_endpoints([pod.port for pod in self.pods])

    def _note(self, what: str, **details: Any) -> None:
        self.events.append({"at": time.monotonic(), "what": what, **details})

    def _terminate(self, pod: Pod) -> None:
        """What the kubelet and the endpoints controller do with a pod being deleted."""

        def leave_endpoints() -> None:
            time.sleep(self.propagation)
            self.balancer.set_endpoints([p for p in self.balancer.endpoints if p != pod.port])
            self._note("endpoint removed", pod=pod.name)

        remover = threading.Thread(target=leave_endpoints, daemon=True)
        remover.start()
        time.sleep(self.pre_stop)  # preStop
        took = pod.terminate(self.grace)
        self._note("pod exited", pod=pod.name, seconds=round(took, 2))
        remover.join()
        pod.destroy()

    def rolling_restart(self) -> dict[str, Any]:
        """Replaces every pod, one at a time (maxSurge 1, maxUnavailable 0)."""
        started = time.monotonic()
        old = list(self.pods)
        for pod in old:
            fresh = self._new_pod()
            fresh.start()
            # The readiness probe, every probe_period seconds; no traffic before it passes.
            begun = time.monotonic()
            while not fresh.ready():
                if time.monotonic() - begun > 120:
                    raise RuntimeError(f"{fresh.name} never became ready")
                time.sleep(self.probe_period)
            self.balancer.set_endpoints([*self.balancer.endpoints, fresh.port])
            self.pods.append(fresh)
            self._note("pod ready", pod=fresh.name)
            self.pods.remove(pod)
            thread = threading.Thread(target=self._terminate, args=(pod,), daemon=True)
            thread.start()
            self._terminations.append(thread)
        for thread in self._terminations:
            thread.join()
        self._terminations.clear()
        return {
            "replaced": len(old),
            "seconds": round(time.monotonic() - started, 1),
        }

    def reload(self, mode: str = "rotate", timeout: float = 90) -> dict[str, Any]:
        """A deploy without Kubernetes, pod by pod: new workers (new code) on the same socket.

        ``hup``: SIGHUP to the master, which starts new workers and stops the old ones at once,
        so requests wait in the listen backlog while the new ones load the application.
        ``rotate``: SIGTTIN once per worker, wait until every new worker has logged "Worker
        ready" (gunicorn.conf.py), then SIGTTOU as many times: the oldest workers stop,
        gracefully, only once their replacements accept.
        """
        started = time.monotonic()
        for pod in self.pods:
            before = set(pod.workers)
            wanted = int(pod.server.env["GUNICORN_WORKERS"])
            if mode == "hup":
                pod.signal(signal.SIGHUP)
            else:
                for _ in range(wanted):
                    pod.signal(signal.SIGTTIN)
                    time.sleep(0.2)  # one signal per turn of the master's loop is counted

                def booted(p: Pod = pod, b: set[int] = before, n: int = wanted) -> bool:
                    fresh = set(p.workers) - b
                    return len(fresh) >= n and all(p.logged_ready(pid) for pid in fresh)

                if not wait_until(booted, timeout=timeout):
                    raise RuntimeError(f"{pod.name}: the new workers did not start")
                for _ in range(wanted):
                    pod.signal(signal.SIGTTOU)
                    time.sleep(0.2)

            def replaced_all(p: Pod = pod, b: set[int] = before, n: int = wanted) -> bool:
                return len(p.workers) == n and not set(p.workers) & b

            if not wait_until(replaced_all, timeout=timeout):
                raise RuntimeError(f"{pod.name}: the workers were not replaced ({mode})")
        return {"reloaded": len(self.pods), "mode": mode, "seconds": round(time.monotonic() - started, 1)}

    def stop(self) -> None:
        for thread in self._terminations:
            thread.join(timeout=self.grace + self.pre_stop + 10)
        for pod in self.pods:
            pod.destroy()
        self.pods.clear()
        self.balancer.stop()


__all__ = ["Balancer", "Deployment", "Pod"]
