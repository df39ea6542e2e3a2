"""A worker's warm-up before it takes requests: /ready says not ready until it is done."""

from __future__ import annotations

import threading
from typing import Any

import pytest
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
    worker = threading.Thread(target=warmup.warm_worker)
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
