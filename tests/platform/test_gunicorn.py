"""The platform as production runs it: gunicorn with several workers, metrics aggregated over them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.processes import ROOT, VENV_BIN, base_env, free_port, gunicorn, http_get

pytestmark = pytest.mark.slow


def _counter(metrics: str, view: str) -> float:
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("http_requests_total{") and f'view="{view}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_are_summed_over_every_worker(tmp_path: Path):
    metrics_dir = tmp_path / "metrics"
    env = base_env(
        DJANGO_SETTINGS_MODULE="settings.test",
        DATABASE_URL=os.environ["DATABASE_URL"],
        REDIS_URL=os.environ["REDIS_URL"],
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        # Which worker accepts a connection is the kernel's choice (one idle worker may take
        # them all): recycling each after 40 requests makes the 150 surely span several,
        # the recycled ones included, whose samples must still be in the sum.
        GUNICORN_MAX_REQUESTS="40",
        GUNICORN_MAX_REQUESTS_JITTER="0",
    )
    with gunicorn(env, workers=3) as url:
        # A route nothing else calls (probes from the fixture may still be in flight).
        target = f"{url}/api/only-this-test"
        before = _counter(http_get(f"{url}/metrics")[1].decode(), "unmatched")
        with ThreadPoolExecutor(max_workers=16) as pool:
            statuses = list(pool.map(lambda _: http_get(target)[0], range(150)))
        assert statuses == [404] * 150
        status, body = http_get(f"{url}/metrics")
        assert status == 200
        # The readiness probe made one more request; every worker's samples are in the sum.
        assert _counter(body.decode(), "unmatched") - before == 150
        assert len(list(metrics_dir.glob("counter_*.db"))) >= 2, "requests should spread over workers"


def test_access_log_is_json(tmp_path: Path):
    env = base_env(
        DJANGO_SETTINGS_MODULE="settings.test",
        DATABASE_URL=os.environ["DATABASE_URL"],
        REDIS_URL=os.environ["REDIS_URL"],
    )
    log = tmp_path / "gunicorn.log"
    with gunicorn(env, log=log) as url:
        http_get(f"{url}/api/nothing-here?page=1", headers={"X-Request-ID": "req-42"})
        time.sleep(0.3)
    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    record = next(r for r in records if r["path"] == "/api/nothing-here")
    assert record["status"] == 404 and record["query"] == "page=1" and record["request_id"] == "req-42"
    assert record["duration_ms"] >= 0


def test_embedded_default_runs_web_and_worker_with_no_services(tmp_path: Path):
    """No variable set: SQLite, in-process caches, a filesystem broker and a real worker process."""
    env = base_env(VAR_DIR=str(tmp_path / "var"), DJANGO_SETTINGS_MODULE="settings.dev")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=180
    )
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=ROOT,
        env={**env, "STATIC_ROOT": str(tmp_path / "static")},
        check=True,
        timeout=180,
    )
    worker = subprocess.Popen(
        [str(VENV_BIN / "celery"), "-A", "videoplatform", "worker", "-Q", "default", "--concurrency", "1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with gunicorn({**env, "STATIC_ROOT": str(tmp_path / "static")}) as url:
            for path in (
                "/health",
                "/ready",
                "/api/videos",
                "/api/schema",
                "/api/docs",
                "/admin/login/",
                "/metrics",
            ):
                assert http_get(f"{url}{path}")[0] == 200, path
            assert json.loads(http_get(f"{url}/ready")[1]) == {"status": "ready", "checks": {"primary": "ok"}}
        ping = subprocess.run(
            [
                sys.executable,
                "-c",
                "import django; django.setup(); from videoplatform.tasks import ping; "
                "print(ping.delay().get(timeout=60)['status'])",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert ping.stdout.strip() == "pong", ping.stderr
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def test_metrics_answer_only_on_the_metrics_listener(tmp_path: Path):
    """gunicorn's second listener (METRICS_PORT): Prometheus scrapes it, the public port has no
    /metrics, whatever the Host header claims."""
    metrics_port = free_port()
    env = base_env(
        DJANGO_SETTINGS_MODULE="settings.test",
        DATABASE_URL=os.environ["DATABASE_URL"],
        REDIS_URL=os.environ["REDIS_URL"],
        METRICS_PORT=str(metrics_port),
    )
    with gunicorn(env) as url:
        public = http_get(f"{url}/metrics")
        spoofed = http_get(f"{url}/metrics", headers={"Host": f"127.0.0.1:{metrics_port}"})
        scrape = http_get(f"http://127.0.0.1:{metrics_port}/metrics")
        health = http_get(f"{url}/health")

    assert public[0] == 404 and json.loads(public[1])["error"]["code"] == "not_found"
    assert spoofed[0] == 404
    assert scrape[0] == 200 and b"# TYPE http_requests_total counter" in scrape[1]
    assert health[0] == 200
