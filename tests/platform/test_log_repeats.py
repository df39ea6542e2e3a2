"""A Redis outage does not flood the logs: django-redis's ignored exceptions, one per kind per
LOG_REPEAT_SECONDS, the next one saying how many were held back."""

from __future__ import annotations

import logging
import socket
from typing import Any

import pytest
from django_redis.cache import RedisCache

from videoplatform.logfilters import Repeats


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def dead_redis_cache() -> RedisCache:
    """A django-redis cache that ignores errors, on a port where nothing listens."""
    return RedisCache(
        f"redis://127.0.0.1:{_closed_port()}/0",
        {"OPTIONS": {"IGNORE_EXCEPTIONS": True, "SOCKET_CONNECT_TIMEOUT": 0.2}},
    )


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_redis_outage_logs_one_traceback_then_a_count(dead_redis_cache: RedisCache, settings: Any) -> None:
    settings.DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
    logger = logging.getLogger("django_redis.cache")
    assert any(isinstance(f, Repeats) for f in logger.filters), (
        "the settings' LOGGING attaches the filter to django-redis's logger"
    )
    collect = _Collect()
    logging.getLogger("django_redis").addHandler(collect)
    repeats = next(f for f in logger.filters if isinstance(f, Repeats))
    repeats._kinds.clear()
    try:
        for _ in range(20):
            assert dead_redis_cache.get("some-key") is None  # ignored: a miss, no error
        assert len(collect.records) == 1
        assert collect.records[0].exc_info is not None  # the first one keeps its traceback
        repeats.seconds = 0.0  # the window is over: the next record passes and says what was held
        dead_redis_cache.get("some-key")
        assert len(collect.records) == 2
        assert "19 more like this" in collect.records[1].getMessage()
    finally:
        logging.getLogger("django_redis").removeHandler(collect)
        repeats.seconds = 10.0


def test_other_kinds_are_not_held_back() -> None:
    repeats = Repeats(seconds=60)

    def record(name: str, msg: str) -> logging.LogRecord:
        return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, None, None)

    assert repeats.filter(record("django_redis.cache", "Exception ignored"))
    assert not repeats.filter(record("django_redis.cache", "Exception ignored"))
    assert repeats.filter(record("django_redis.cache", "something else"))
    assert repeats.filter(record("django_redis.client", "Exception ignored"))
