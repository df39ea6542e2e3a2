"""/ready follows its dependencies; /health does not. Real gunicorn, Redis and PostgreSQL of their own."""

from __future__ import annotations

import json

import pytest

from tests.support.processes import PostgresServer, RedisServer, base_env, gunicorn, http_get, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def redis_server():
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def postgres_server():
    server = PostgresServer()
    server.start()
    yield server
    server.destroy()


def _ready(url: str) -> tuple[int, dict]:
    status, body = http_get(f"{url}/ready")
    return status, json.loads(body)


def test_ready_follows_redis_and_database(redis_server, postgres_server):
    env = base_env(
        DJANGO_SETTINGS_MODULE="settings.test",
        DATABASE_URL=postgres_server.url,
        REDIS_URL=redis_server.url,
        DB_CONNECT_TIMEOUT="2",
    )
    with gunicorn(env) as url:
        assert _ready(url) == (200, {"status": "ready", "checks": {"primary": "ok", "redis": "ok"}})

        redis_server.stop()
        status, body = _ready(url)
        assert status == 503
        assert body["status"] == "not_ready"
        assert body["error"].startswith("redis:")
        assert http_get(f"{url}/health")[0] == 200

        redis_server.start()
        assert wait_until(lambda: _ready(url)[0] == 200, timeout=10)

        postgres_server.stop()
        status, body = _ready(url)
        assert status == 503
        assert "primary" in body["error"]
        assert body["checks"]["redis"] == "ok"
        assert http_get(f"{url}/health") == (200, b'{"status": "ok"}')

        postgres_server.start()
        assert wait_until(lambda: _ready(url)[0] == 200, timeout=15)
        assert http_get(f"{url}/health")[0] == 200
