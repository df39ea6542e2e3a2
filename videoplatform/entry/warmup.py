"""A new worker's warm-up, before it takes requests (docs/deployment.md, "Start-up and readiness").

gunicorn calls ``warm_worker`` from its ``post_worker_init`` hook (``gunicorn.conf.py``): after
the application is loaded in the worker and before the worker accepts a connection, so no
request ever meets a cold worker; the other workers of the pod serve meanwhile. It:

1. does the lazy initialisation of the first requests ahead of them (``initialise``; in the
   master, before the fork, when the application is preloaded): the URL configuration resolved
   (which imports every view), the job modules, the Argon2 bindings and the storage backend
   imported;
2. opens the connections a request needs: Redis (the cache's client; the invalidation feed
   connects in step 3), the job broker, and in each request thread of the worker the primary,
   the replicas and the S3 client;
3. fills L1 from L2 with the keys the running processes use most (``videoplatform.cache.warm``),
   within ``WORKER_WARMUP_TIMEOUT`` seconds.

``/ready`` answers 503 while the worker that receives it is warming (``state()``); in a worker
that gunicorn did not start (the test client, ``runserver``) there is no warm-up and it is ready.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from concurrent.futures import Executor, wait
from typing import Final

from django.conf import settings

from videoplatform.cache.warm import HotKeyRecorder, warm_l1

logger = logging.getLogger(__name__)

NOT_STARTED: Final = "not started"
WARMING: Final = "warming"
WARM: Final = "warm"

_state = NOT_STARTED
_lock = threading.Lock()
_recorder: HotKeyRecorder | None = None

# Paths whose resolution imports the views a request reaches first (no request is made).
_PATHS: Final = (
    "/api/videos",
    "/api/videos/vid_0000000000000000000000",
    "/api/videos/vid_0000000000000000000000/stream",
    "/api/subscriptions/plans",
    "/api/auth/login",
    "/api/videos/create",
)


def state() -> str:
    return _state


def _set(value: str) -> None:
    global _state
    with _lock:
        _state = value


def initialise() -> None:
    """The first requests' lazy work, without a request and without opening a connection (it
    runs in gunicorn's master before the fork when the application is preloaded): views
    imported, DRF's settings read, the job modules a write enqueues into imported (Celery's
    autodiscovery), the Argon2 bindings and the storage backend (boto3 for S3) loaded."""
    import importlib

    from celery import current_app
    from django.core.files.storage import default_storage
    from django.urls import Resolver404, get_resolver
    from rest_framework.settings import api_settings

    resolver = get_resolver()
    for path in _PATHS:
        with contextlib.suppress(Resolver404):
            resolver.resolve(path)
    for name in ("DEFAULT_RENDERER_CLASSES", "DEFAULT_PARSER_CLASSES", "DEFAULT_AUTHENTICATION_CLASSES"):
        getattr(api_settings, name)
    current_app.loader.import_default_modules()
    for module in ("argon2", "argon2.low_level"):
        importlib.import_module(module)
    # The backend's object; its client is made per thread, on first use (connect()).
    default_storage._setup()  # type: ignore[attr-defined]


def open_in_this_thread() -> None:
    """What a request thread opens on its first request: its database connections and, with
    S3 storage, its S3 client (django-storages keeps one per thread; building it parses the
    service's description, a few hundred milliseconds of CPU)."""
    from django.core.files.storage import default_storage
    from django.db import connections

    for alias in ("default", *settings.REPLICA_DATABASES):
        try:
            connections[alias].ensure_connection()
        except Exception as exc:  # noqa: BLE001 - reported by /ready; the warm-up goes on
            logger.warning("warm-up: database %s is unreachable (%s)", alias, type(exc).__name__)
    if hasattr(default_storage, "bucket"):
        try:
            default_storage.connection  # type: ignore[attr-defined]  # noqa: B018 - kept for this thread
        except Exception as exc:  # noqa: BLE001
            logger.warning("warm-up: no S3 client (%s)", type(exc).__name__)


def _open_broker() -> None:
    """The connection jobs are published on (the first write that enqueues one would open it)."""
    from celery import current_app

    try:
        with current_app.producer_or_acquire() as producer:
            producer.connection.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:  # noqa: BLE001 - a broker outage is logged by the first enqueue too
        logger.warning("warm-up: the job broker is unreachable (%s)", type(exc).__name__)


def connect(pool: Executor | None = None, threads: int = 0) -> None:
    """Opens the connections a request needs: the cache's Redis connection and the job broker's
    (shared by the process's threads) and, in each of the ``threads`` threads of ``pool`` that
    will serve requests, the primary's and the replicas' (Django's connections belong to a
    thread, and the data layer keeps them for ``DB_CONN_MAX_AGE``) and the S3 client. Errors are
    logged: ``/ready`` reports the database and Redis."""
    from django.core.cache import caches

    if settings.REDIS_URL:
        try:
            client = getattr(caches["default"], "client", None)
            if client is not None and hasattr(client, "get_client"):
                client.get_client(write=True).ping()
        except Exception as exc:  # noqa: BLE001
            logger.warning("warm-up: Redis is unreachable (%s)", type(exc).__name__)
    _open_broker()
    if pool is None or threads <= 0:
        return
    # Each task waits for the others, so every one of them runs in a thread of its own.
    together = threading.Barrier(threads)

    def open_here() -> None:
        open_in_this_thread()
        with contextlib.suppress(threading.BrokenBarrierError):
            together.wait(timeout=5)

    wait([pool.submit(open_here) for _ in range(threads)], timeout=10)


def warm_worker(pool: Executor | None = None, threads: int = 0) -> None:
    """The warm-up (see the module's text); then this process reports its hot keys. ``pool`` is
    the worker's pool of request threads (gunicorn's gthread worker), ``threads`` its size."""
    global _recorder
    if float(settings.WORKER_WARMUP_TIMEOUT) <= 0:  # switched off: the worker serves at once
        _set(WARM)
        return
    _set(WARMING)
    started = time.monotonic()
    try:
        initialise()
        connect(pool, threads)
        left = float(settings.WORKER_WARMUP_TIMEOUT) - (time.monotonic() - started)
        warmed = warm_l1(timeout=max(0.0, left))
        logger.info(
            "worker warm in %.2f s; %s", time.monotonic() - started, warmed.describe(), extra={"warmup": True}
        )
    except Exception:  # a failed warm-up leaves a cold worker, never a dead one
        logger.exception("worker warm-up failed; serving cold")
    finally:
        _set(WARM)
    recorder = HotKeyRecorder()
    recorder.start()
    _recorder = recorder


def stop_recording() -> None:
    """Stops this process's hot-key reports (tests; a worker reports until it exits)."""
    global _recorder
    if _recorder is not None:
        _recorder.stop()
        _recorder = None
