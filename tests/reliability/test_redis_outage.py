"""Redis stopped and started under a steady mixed load: every request still answers (from the
database), /ready says 503 meanwhile, and caching resumes once Redis is back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from accounts import services
from bench.loadgen import LoadGenerator, User
from tests.factories import DEFAULT_PASSWORD, UserFactory, VideoFactory
from tests.reliability.conftest import CLIENT_TIMEOUT, print_report, ready, sample_ready
from tests.security.conftest import live_database_url
from tests.support.processes import RedisServer, base_env, gunicorn, wait_until
from videos.models import Video

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def server(redis_server: RedisServer, tmp_path: Path) -> Iterator[str]:
    env = base_env(
        DJANGO_SETTINGS_MODULE="settings.test",
        DATABASE_URL=live_database_url(),
        REDIS_URL=redis_server.url,
        VAR_DIR=str(tmp_path / "var"),
        DB_CONNECT_TIMEOUT="2",
        LOG_LEVEL="WARNING",
        # The load creates hundreds of videos from a few accounts: no daily upload quota here.
        UPLOADS_PER_DAY="1000000",
        TRANSCODE_MINUTES_PER_DAY="1000000",
    )
    with gunicorn(env, workers=2) as url:
        yield url


def _cast() -> tuple[list[User], list[str]]:
    users = []
    for _ in range(3):
        account = UserFactory()
        token = services.token_issue(user=account).token
        users.append(User(username=account.username, password=DEFAULT_PASSWORD, token=token, id=account.pk))
    videos = [VideoFactory(ready=True).pk for _ in range(5)]
    return users, videos


def test_redis_outage_under_load(server: str, redis_server: RedisServer) -> None:
    users, videos = _cast()
    load = LoadGenerator(server, users=users, video_ids=videos, threads=4, timeout=CLIENT_TIMEOUT)
    load.start(duration=120)
    time.sleep(3)
    fault_at = load.now()
    redis_server.stop()
    during = sample_ready(server, 4)
    redis_server.start()
    back_at = load.now()
    assert wait_until(lambda: ready(server)[0] == 200, timeout=30)
    time.sleep(3)
    report = load.stop()
    print_report("redis outage", report, fault_at, back_at)

    assert report.between(fault_at, back_at).sent > 20, "the load did not run through the outage"
    assert report.failed == 0, report.failures[:5]
    assert 503 in during, during
    assert all(status in (200, 503) for status in during)
    acknowledged = report.acknowledged_writes
    assert acknowledged and Video.objects.filter(pk__in=acknowledged).count() == len(acknowledged)

    # Caching resumes: the restarted server started empty (no persistence), so whatever it holds
    # was cached by the load after it came back.
    assert redis.Redis.from_url(redis_server.url).dbsize() > 0
