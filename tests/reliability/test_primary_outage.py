"""The primary PostgreSQL stopped and started under a steady mixed load (a throwaway server of
this test's own): while it is down, requests that need it get a clean 503 JSON error with
Retry-After, never a traceback or an HTML page; afterwards everything recovers, and every write
that was acknowledged is in the database."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bench.faults.stack import Gunicorn, Stack, pg_connect, stack
from bench.loadgen import LoadGenerator, seed_users, seed_videos
from tests.reliability.conftest import CLIENT_TIMEOUT, print_report, ready, sample_ready
from tests.security.conftest import live_database_url
from tests.support.processes import wait_until

# django_db: so that the test database exists (and is migrated) to be copied.
pytestmark = [pytest.mark.slow, pytest.mark.django_db]


@pytest.fixture
def built(django_db_setup: Any) -> Iterator[Stack]:
    # The test database, already migrated, is copied into the throwaway primary (seconds, where
    # running every migration would take minutes).
    with stack(template_url=live_database_url()) as servers:
        yield servers


@pytest.fixture
def server(built: Stack) -> Iterator[Gunicorn]:
    gunicorn = Gunicorn(built.app_env(LOG_LEVEL="WARNING"), workers=2)
    gunicorn.start()
    yield gunicorn
    gunicorn.destroy()


def test_primary_outage_under_load(built: Stack, server: Gunicorn) -> None:
    users = seed_users(server.url, count=3, prefix="primary")
    videos = seed_videos(server.url, users, per_user=2)
    load = LoadGenerator(server.url, users=users, video_ids=videos, threads=4, timeout=CLIENT_TIMEOUT)
    load.start(duration=180)
    time.sleep(3)
    fault_at = load.now()
    built.primary.stop()
    during = sample_ready(server.url, 4)
    built.primary.start()
    back_at = load.now()

    def writes_again() -> bool:
        response = httpx.post(
            f"{server.url}/api/videos",
            json={"title": "after the outage"},
            headers={"Authorization": f"Bearer {users[0].token}"},
            timeout=CLIENT_TIMEOUT,
        )
        return response.status_code == 201

    assert wait_until(writes_again, timeout=60)
    recovered_at = load.now()
    time.sleep(3)
    report = load.stop()
    print_report("primary outage", report, fault_at, back_at)

    outage = report.between(fault_at, back_at)
    assert outage.failed > 0, "the load did not reach the primary while it was down"
    assert {s.status for s in report.failures} == {503}, report.statuses()
    assert not report.unclean_failures
    assert all(s.error.startswith('{"error":{"code":"service_unavailable"') for s in report.failures)
    # Requests answered before the primary went away (one in flight at that moment may fail).
    assert not [s for s in report.failures if s.at + s.latency < fault_at]
    assert report.between(recovered_at, 1e9).failed == 0
    assert 503 in during
    assert ready(server.url)[0] == 200

    acknowledged = report.acknowledged_writes
    assert acknowledged
    with pg_connect(built.primary.port) as conn:
        rows = conn.execute(
            "SELECT count(*) FROM videos_video WHERE id = ANY(%s)", (acknowledged,)
        ).fetchone()
    assert rows is not None and rows[0] == len(acknowledged)


def test_a_503_during_the_outage_says_when_to_retry(built: Stack, server: Gunicorn) -> None:
    users = seed_users(server.url, count=1, prefix="retry")
    built.primary.stop()
    try:
        response = httpx.post(
            f"{server.url}/api/videos",
            json={"title": "during the outage"},
            headers={"Authorization": f"Bearer {users[0].token}"},
            timeout=CLIENT_TIMEOUT,
        )
        assert response.status_code == 503
        assert response.headers["Content-Type"] == "application/json"
        assert int(response.headers["Retry-After"]) >= 1
        assert response.json()["error"]["code"] == "service_unavailable"
        assert "Traceback" not in response.text
        # Pages outside the API say so too, in plain text.
        page = httpx.get(f"{server.url}/watch/vid_anything", timeout=CLIENT_TIMEOUT)
        assert page.status_code == 503 and "Traceback" not in page.text
    finally:
        built.primary.start()
