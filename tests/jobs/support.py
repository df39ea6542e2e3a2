"""Real Celery workers (and beat) for the job tests, on real brokers: Redis databases of their
own, and RabbitMQ. A worker reads the test database, so tests that use one run with
``@pytest.mark.django_db(transaction=True)``."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from django.db import connection

from tests.support.processes import ROOT, VENV_BIN, base_env, wait_until

BROKER_URL = os.environ.get("JOBS_TEST_BROKER_URL", "redis://127.0.0.1:6379/6")
PROBE_URL = os.environ.get("JOBS_TEST_PROBE_URL", "redis://127.0.0.1:6379/7")
AMQP_URL = os.environ.get("JOBS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
ALL_QUEUES = "email,notification,transcoding,indexing,default,recommendation"
# Every broker and probe key of this test run starts with it: runs sharing a Redis stay apart.
RUN_PREFIX = f"jobstest-{uuid.uuid4().hex[:8]}:"


def unique_key(name: str) -> str:
    """A probe key of its own for one test."""
    return f"{RUN_PREFIX}{name}-{uuid.uuid4().hex[:6]}"


def test_database_url() -> str:
    db = connection.settings_dict
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return (
        f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"
    )


@contextmanager
def app_on_broker(url: str) -> Iterator[Any]:
    """Points this process's Celery app at ``url``, configured as a worker on it would be."""
    from videoplatform.celery import app, configure_jobs

    saved = {
        name: app.conf[name]
        for name in (
            "broker_url",
            "broker_transport_options",
            "result_backend",
            "task_queues",
            "task_queue_max_priority",
        )
    }

    def reset() -> None:
        app.__dict__.pop("amqp", None)  # queues and router are cached on it
        app._after_fork()  # drops pooled connections

    app.conf.broker_url = url
    app.conf.broker_transport_options = {"global_keyprefix": RUN_PREFIX} if url.startswith("redis") else {}
    app.conf.result_backend = None
    configure_jobs()
    reset()
    try:
        yield app
    finally:
        for name, value in saved.items():
            app.conf[name] = value
        reset()


class CeleryProcess:
    """A celery worker or beat process with its own log, stopped with its whole process group."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, ready: str) -> None:
        self.args = args
        self.env = env
        self.log = log
        self.ready = ready
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> CeleryProcess:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [str(VENV_BIN / "celery"), "-A", "videoplatform", *self.args],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        assert wait_until(lambda: self.ready in self.text(), timeout=60), self.tail()
        return self

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self) -> str:
        return self.text()[-4000:]

    def terminate(self) -> None:
        """SIGTERM to the worker itself: a warm shutdown (running tasks finish)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL to the worker and its pool at once, as a lost node would."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process is None:
            return
        try:
            self.process.send_signal(signal.SIGTERM)  # the main process: a warm shutdown
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        except ProcessLookupError:
            pass
        self.process = None


def worker_env(broker: str, tmp: Path, **extra: str) -> dict[str, str]:
    return base_env(
        DJANGO_SETTINGS_MODULE="tests.jobs.worker_settings",
        DATABASE_URL=test_database_url(),
        REDIS_URL=os.environ.get("REDIS_URL", ""),
        CELERY_BROKER_URL=broker,
        CELERY_BROKER_KEY_PREFIX=RUN_PREFIX,
        JOBS_TEST_PROBE_URL=PROBE_URL,
        VAR_DIR=str(tmp / "var"),
        DB_CONN_MAX_AGE="0",
        JOBS_RETRY_BACKOFF="0.2",
        **extra,
    )


@contextmanager
def celery_worker(
    broker: str, tmp: Path, *, queues: str = ALL_QUEUES, concurrency: int = 1, **env: str
) -> Iterator[CeleryProcess]:
    name = f"jobs-test-{uuid.uuid4().hex[:8]}@%h"
    worker = CeleryProcess(
        [
            "worker",
            "-Q",
            queues,
            "-c",
            str(concurrency),
            "-P",
            "prefork",
            "-n",
            name,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "info",
            "-I",
            "tests.jobs.worker_tasks",
        ],
        worker_env(broker, tmp, **env),
        tmp / f"worker-{uuid.uuid4().hex[:6]}.log",
        ready="ready.",
    )
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


@contextmanager
def celery_beat(broker: str, tmp: Path, **env: str) -> Iterator[CeleryProcess]:
    beat = CeleryProcess(
        ["beat", "-s", str(tmp / "beat-schedule"), "--max-interval", "1", "-l", "info"],
        worker_env(broker, tmp, **env),
        tmp / "beat.log",
        ready="beat: Starting",
    )
    beat.start()
    try:
        yield beat
    finally:
        beat.stop()


def flush_redis(url: str) -> None:
    """Deletes this run's keys (never another run's)."""
    client = redis.Redis.from_url(url)
    for key in client.scan_iter(f"{RUN_PREFIX}*"):
        client.delete(key)


def broker_key(key: str) -> str:
    """A key of this run in the Redis broker (kombu prepends the prefix to every key)."""
    return RUN_PREFIX + key
