"""Helpers for the cache tests: live tiers, a second "process" on the same Redis, query counts.

The test command points REDIS_URL at a real Redis. A second ``Tiers`` built in this process has
its own L1, its own invalidation feed and its own origin, exactly like another process; tests
that need a real other process start gunicorn (test_processes.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from videoplatform.cache.core import Tiers, tiers

requires_redis = pytest.mark.skipif(not settings.REDIS_URL, reason="the cache tiers need REDIS_URL")


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def live(current: Tiers) -> Tiers:
    """``current`` with its invalidation feed connected (so that its L1 is in use)."""
    current.feed.ensure_started()
    assert wait_for(current.feed.alive), "the invalidation feed did not connect"
    return current


@pytest.fixture
def this_process() -> Tiers:
    return live(tiers())


@pytest.fixture
def other_process() -> Iterator[Tiers]:
    """Tiers with their own L1 and feed on the same L2: what another process has."""
    other = Tiers(settings.CACHE_TIERS_ALIAS)
    live(other)
    yield other
    other.stop()


class QueryCounter:
    """Counts SQL statements over every thread that wraps its connection with it."""

    def __init__(self, first_delay: float = 0.0) -> None:
        self.count = 0
        self.statements: list[str] = []
        self._lock = threading.Lock()
        self._first_delay = first_delay

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        with self._lock:
            self.count += 1
            self.statements.append(sql)
            first = self.count == 1
        if first and self._first_delay:
            time.sleep(self._first_delay)  # keeps the first load open while the others arrive
        return execute(sql, params, many, context)

    @contextmanager
    def counting(self) -> Iterator[None]:
        with connection.execute_wrapper(self):
            yield


def in_threads(count: int, work: Callable[[], Any], counter: QueryCounter | None = None) -> list[Any]:
    """Runs ``work`` in ``count`` threads released together; their results (or exceptions)."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        try:
            barrier.wait()
            if counter is None:
                results[index] = work()
            else:
                with counter.counting():
                    results[index] = work()
        except Exception as exc:  # noqa: BLE001 - reported to the test
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results
