"""Real processes: gunicorn serving from its L1 sees an update made elsewhere within a second,
and keeps answering from the database while its Redis is stopped."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from tests.cache.conftest import requires_redis
from tests.factories import VideoFactory
from tests.support.processes import RedisServer, base_env, gunicorn, http_get, wait_until
from videos.models import Video

pytestmark = [requires_redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def server_env(redis_url: str, **extra: str) -> dict[str, str]:
    return base_env(
        DJANGO_SETTINGS_MODULE="settings.test",
        DATABASE_URL=database_url(),
        REDIS_URL=redis_url,
        # Entries that would live for an hour: only the invalidation feed can explain a change seen.
        CACHE_TTL_VIDEO="3600",
        CACHE_L1_TTL="3600",
        GUNICORN_THREADS="2",
        GUNICORN_ACCESS_LOG="/dev/null",
        **extra,
    )


def sample(metrics: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    prefix = f"{name}{{{wanted}}} " if labels else f"{name} "
    for line in metrics.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def get_json(url: str) -> tuple[int, Any]:
    status, body = http_get(url)
    return status, json.loads(body) if body else None


def test_an_update_through_the_api_shows_in_another_process_within_a_second(user: Any, user_client: Any):
    video = VideoFactory(owner=user, title="Before")
    with gunicorn(server_env(settings.REDIS_URL)) as url:
        path = f"{url}/api/videos/{video.pk}"
        # Warm the server's L1 (its feed connects on first use), and check it serves from there.
        assert wait_until(lambda: get_json(path)[1]["title"] == "Before", timeout=10)

        def l1_hits() -> float:
            """Answers from this process's memory: L1, or the response cache built on it."""
            metrics = http_get(f"{url}/metrics")[1].decode()
            return sample(metrics, "cache_requests_total", kind="video", result="hit", tier="l1") + sample(
                metrics, "response_cache_requests_total", result="hit"
            )

        hits = l1_hits()
        assert wait_until(lambda: get_json(path)[1]["title"] == "Before" and l1_hits() > hits, timeout=10)

        response = user_client.patch(f"/api/videos/{video.pk}", {"title": "After"}, format="json")
        assert response.status_code == 200
        committed = time.monotonic()
        seen = None
        while time.monotonic() - committed < 1.0:
            if get_json(path)[1]["title"] == "After":
                seen = time.monotonic() - committed
                break
            time.sleep(0.01)
        assert seen is not None, "the other process still served the old title a second after the update"
        print(f"update seen by the other process after {seen * 1000:.0f} ms")


def test_the_api_answers_from_the_database_while_redis_is_stopped(user: Any):
    redis_server = RedisServer()  # a throwaway server: the shared one stays up
    redis_server.start()
    try:
        video = VideoFactory(owner=user, title="Before", ready=True)
        with gunicorn(server_env(redis_server.url, CACHE_FEED_LEASE="0.5")) as url:
            path = f"{url}/api/videos/{video.pk}"
            assert get_json(path)[0] == get_json(path)[0] == 200  # cached
            assert get_json(f"{url}/api/videos")[0] == 200

            redis_server.stop()
            Video.objects.filter(pk=video.pk).update(title="Changed while Redis was down")

            # Every request still succeeds; once the feed is lost the server reads the database.
            statuses = []

            def fresh() -> bool:
                status, body = get_json(path)
                statuses.append(status)
                return status == 200 and body["title"] == "Changed while Redis was down"

            assert wait_until(fresh, timeout=10, interval=0.05)
            assert set(statuses) == {200}
            assert get_json(f"{url}/api/videos")[0] == 200
            assert get_json(f"{url}/api/subscriptions/plans")[0] == 200
            status, body = get_json(f"{url}/ready")
            assert status == 503 and body["checks"]["redis"].startswith("down")
            metrics = http_get(f"{url}/metrics")[1].decode()
            assert sample(metrics, "cache_errors_total", kind="video", tier="l2") > 0
            assert sample(metrics, "cache_invalidation_feed_connected") == 0

            redis_server.start()
            assert wait_until(lambda: get_json(f"{url}/ready")[0] == 200, timeout=15)
            assert wait_until(
                lambda: (
                    sample(http_get(f"{url}/metrics")[1].decode(), "cache_invalidation_feed_connected") == 1
                ),
                timeout=15,
            )
            assert get_json(path)[1]["title"] == "Changed while Redis was down"
    finally:
        redis_server.stop()
