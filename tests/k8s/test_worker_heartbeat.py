"""The workers' liveness probe against real Celery workers: a worker whose event loop turns
keeps the probe passing; a frozen one fails it; a file left by a previous container does not
vouch for a worker that has not reached its broker."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.jobs.support import BROKER_URL, CeleryProcess, celery_worker, flush_redis, worker_env
from tests.k8s.support import build, find, pod_spec, run_probe
from tests.support.processes import wait_until
from videoplatform.jobs.heartbeat import ENV_VAR, INTERVAL


@pytest.fixture(scope="module")
def liveness() -> dict[str, Any]:
    deployment = find(build("overlays/prod"), "Deployment", "worker-background")
    probe: dict[str, Any] = pod_spec(deployment)["containers"][0]["livenessProbe"]
    return probe


def _passes(probe: dict[str, Any], heartbeat: Path) -> bool:
    return run_probe(probe, heartbeat) == 0


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_a_turning_event_loop_keeps_the_probe_passing_and_a_frozen_one_fails_it(
    liveness: dict[str, Any], tmp_path: Path
) -> None:
    heartbeat = tmp_path / "worker-heartbeat"
    try:
        with celery_worker(BROKER_URL, tmp_path, queues="default", **{ENV_VAR: str(heartbeat)}) as worker:
            assert worker.process is not None
            assert heartbeat.exists(), worker.tail()
            assert run_probe(liveness, heartbeat) == 0
            # Made stale by hand, the file is fresh again within an interval: the loop touches it.
            _age(heartbeat, 120)
            assert run_probe(liveness, heartbeat) != 0
            assert wait_until(lambda: _passes(liveness, heartbeat), timeout=3 * INTERVAL), worker.tail()
            # The main process frozen (its loop cannot turn; the pool's children still run).
            os.kill(worker.process.pid, signal.SIGSTOP)
            try:
                _age(heartbeat, 120)
                time.sleep(INTERVAL + 3)
                assert run_probe(liveness, heartbeat) != 0, "a frozen worker must fail the probe"
            finally:
                os.kill(worker.process.pid, signal.SIGCONT)
            assert wait_until(lambda: _passes(liveness, heartbeat), timeout=3 * INTERVAL), worker.tail()
        # A warm shutdown removes the file.
        assert not heartbeat.exists()
    finally:
        flush_redis(BROKER_URL)


def test_a_previous_containers_file_does_not_vouch_for_a_worker_without_its_broker(
    liveness: dict[str, Any], tmp_path: Path
) -> None:
    heartbeat = tmp_path / "worker-heartbeat"
    heartbeat.touch()  # left on the pod's volume by the container that just died: still fresh
    assert run_probe(liveness, heartbeat) == 0
    unreachable = "redis://127.0.0.1:1/0"
    name = f"heartbeat-test-{uuid.uuid4().hex[:8]}@%h"
    worker = CeleryProcess(
        ["worker", "-Q", "default", "-c", "1", "-n", name, "-l", "info"],
        worker_env(unreachable, tmp_path, **{ENV_VAR: str(heartbeat)}),
        tmp_path / "worker.log",
        ready="Cannot connect",
    )
    worker.start()
    try:
        assert not heartbeat.exists(), worker.tail()
        assert run_probe(liveness, heartbeat) != 0
    finally:
        worker.stop()
