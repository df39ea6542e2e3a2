"""A worker's warm-up before it takes requests: /ready says not ready until it is done."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connections
from django.test import Client

from videoplatform.cache.warm import Warmed
from videoplatform.entry import warmup

pytestmark = pytest.mark.django_db(transaction=True)


def test_ready_is_false_while_the_worker_warms_and_true_once_it_is_warm(client: Client, monkeypatch):
    monkeypatch.setattr(warmup, "_state", warmup.NOT_STARTED)
    filling, release = threading.Event(), threading.Event()

    def slow_fill(**kwargs: Any) -> Warmed:
        filling.set()
        release.wait(10)
        return Warmed(wanted=3, kept=3, seconds=0.1)

    monkeypatch.setattr(warmup, "warm_l1", slow_fill)

    def start_worker() -> None:
        warmup.warm_worker()
        connections.close_all()

    worker = threading.Thread(target=start_worker)
    worker.start()
    try:
        assert filling.wait(10), "the warm-up did not reach the L1 fill"
        response = client.get("/ready")
        assert response.status_code == 503
        assert response.json() == {
            "status": "not_ready",
            "error": "warming up",
            "checks": {"warmup": "warming"},
        }
    finally:
        release.set()
        worker.join(10)
        warmup.stop_recording()

    assert warmup.state() == warmup.WARM
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"


def _in_every_thread(pool: ThreadPoolExecutor, threads: int, work: Any) -> list[Any]:
    together = threading.Barrier(threads)

    def run() -> Any:
        result = work()
        together.wait(timeout=5)
        return result

    return [future.result(10) for future in [pool.submit(run) for _ in range(threads)]]


def test_each_request_thread_has_its_database_connection_before_the_first_request():
    pool = ThreadPoolExecutor(max_workers=2)
    try:
        warmup.connect(pool, threads=2)
        opened = _in_every_thread(pool, 2, lambda: connections["default"].connection is not None)
        assert opened == [True, True]
    finally:
        _in_every_thread(pool, 2, connections.close_all)
        pool.shutdown()


def test_a_failed_warm_up_leaves_a_serving_worker(client: Client, monkeypatch):
    monkeypatch.setattr(warmup, "_state", warmup.NOT_STARTED)

    def broken(**kwargs: Any) -> Warmed:
        raise RuntimeError("boom")

    monkeypatch.setattr(warmup, "warm_l1", broken)
    warmup.warm_worker()
    warmup.stop_recording()
    assert warmup.state() == warmup.WARM
    assert client.get("/ready").status_code == 200


def test_without_gunicorn_there_is_no_warm_up_and_the_process_is_ready(client: Client, monkeypatch):
    monkeypatch.setattr(warmup, "_state", warmup.NOT_STARTED)
    assert client.get("/ready").status_code == 200


@pytest.mark.slow
def test_a_gunicorn_worker_fills_its_l1_from_the_hot_keys_before_serving(tmp_path):
    """The shipped gunicorn.conf.py: a worker that starts while others reported their hot keys
    loads them from L2 before it takes requests, and says so in its log."""
    import os
    import re

    from django.conf import settings

    from tests.cache.conftest import live
    from tests.support.processes import base_env, gunicorn, http_get
    from videoplatform.cache import warm
    from videoplatform.cache.core import Tiers

    if not settings.REDIS_URL:
        pytest.skip("the warm-up needs REDIS_URL")
    running = live(Tiers(settings.CACHE_TIERS_ALIAS))  # a process already serving
    try:
        running.remote.client().delete(running.remote.key(warm.HOT_SET))
        for n in range(3):
            running.fetch("video", f"vid_gunicornwarm{n}", lambda n=n: {"title": f"video {n}"})
        assert warm.record(running) == 3
    finally:
        running.stop()
    env = base_env(
        DJANGO_SETTINGS_MODULE="settings.test",
        DATABASE_URL=os.environ["DATABASE_URL"],
        REDIS_URL=os.environ["REDIS_URL"],
        LOG_LEVEL="INFO",
    )
    log = tmp_path / "gunicorn.log"
    with gunicorn(env, log=log) as url:
        status, body = http_get(f"{url}/ready")
        assert status == 200, body
    warmed = re.search(r"L1 warmed with (\d+) of (\d+) hot entries", log.read_text())
    assert warmed is not None, log.read_text()[-2000:]
    assert (int(warmed.group(1)), int(warmed.group(2))) == (3, 3)


def test_a_zero_timeout_switches_the_warm_up_off(client: Client, monkeypatch, settings):
    settings.WORKER_WARMUP_TIMEOUT = 0
    monkeypatch.setattr(warmup, "_state", warmup.NOT_STARTED)
    calls = []
    monkeypatch.setattr(warmup, "warm_l1", lambda **kwargs: calls.append(kwargs))
    warmup.warm_worker()
    assert calls == [] and warmup.state() == warmup.WARM
    assert client.get("/ready").status_code == 200
