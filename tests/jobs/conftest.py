"""Fixtures of the job tests: brokers emptied before and after, and the probe Redis."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.jobs.support import BROKER_URL, PROBE_URL, app_on_broker, flush_redis


@pytest.fixture
def redis_broker() -> Iterator[str]:
    flush_redis(BROKER_URL)
    with app_on_broker(BROKER_URL):
        yield BROKER_URL
    flush_redis(BROKER_URL)


@pytest.fixture
def probe() -> Iterator[Any]:
    """Where probe tasks record what ran (keys from ``unique_key``)."""
    client = redis.Redis.from_url(PROBE_URL, decode_responses=True)
    yield client
    flush_redis(PROBE_URL)
