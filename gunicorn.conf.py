"""gunicorn settings; every value can be overridden from the environment.

The metrics directory is prepared here, before any worker imports prometheus_client,
so every worker writes its samples where ``/metrics`` aggregates them. The hooks at the end
warm a new worker before it takes requests (docs/deployment.md, "Start-up and readiness").
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

_metrics_dir = Path(os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", "/tmp/videoplatform-metrics"))  # noqa: S108
# The preloaded application (preload_app) creates its metrics in the master before on_starting
# runs: the directory must exist by then (on_starting empties it before any worker starts).
_metrics_dir.mkdir(parents=True, exist_ok=True)

_host = os.environ.get("HOST", "0.0.0.0")  # noqa: S104 - a pod listens on its own address
bind = [f"{_host}:{os.environ.get('PORT', '8000')}"]
# A second listener for Prometheus: /metrics answers there only (videoplatform/metrics.py), so
# the network can open it to the monitoring namespace alone.
if os.environ.get("METRICS_PORT"):
    bind.append(f"{os.environ.get('METRICS_HOST', _host)}:{os.environ['METRICS_PORT']}")
# gthread: keep-alive connections wait in the worker's event loop, not in a thread. One worker
# per core and two threads each: the GIL lets one thread of a process run Python at a time, so
# more processes than cores only add context switches and cold per-process (L1) caches, and more
# threads than needed to cover database and Redis round trips only stretch the tail while they
# queue for the GIL (docs/performance.md has the measurements). Raise GUNICORN_THREADS when
# those round trips are long (remote services) or uploads stream through the API.
worker_class = "gthread"


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may use, not the machine's
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


workers = int(os.environ.get("GUNICORN_WORKERS", str(_cores())))
threads = int(os.environ.get("GUNICORN_THREADS", "2"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
# Kubernetes sends SIGTERM after the preStop delay; in-flight requests get this long to finish.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "25"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
backlog = int(os.environ.get("GUNICORN_BACKLOG", "2048"))
# Recycle workers now and then, so a slow leak cannot grow without bound. Not often: a recycle
# costs a fresh Django start-up, an empty in-process cache and the worker's keep-alive
# connections; at the HPA's 1,000 req/s per pod a worker serves 20,000 requests in under a minute.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "500000"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "50000"))
# Heartbeat files on tmpfs: a slow disk must not make the master think a worker hung.
_shm = "/dev/shm"  # noqa: S108 - gunicorn's own heartbeat files, not user data
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR", _shm if os.path.isdir(_shm) else None)
# gunicorn's control socket (for gunicornc) would go to $XDG_RUNTIME_DIR or $HOME/.gunicorn, which
# a read-only root filesystem refuses (the master then logs an error on every start). Nothing in
# a pod uses it: off unless GUNICORN_CONTROL_SOCKET names a writable path for it.
control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET", "")
control_socket_disable = not control_socket
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
logger_class = "videoplatform.entry.serving.JsonAccessLogger"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
wsgi_app = "videoplatform.wsgi:application"
# The application is imported once, in the master, and the workers fork from it: a worker (a new
# pod's, or one recycled after max_requests) starts without importing Django and the platform
# again, and the pages of that code are shared. Nothing opens a connection or a thread at import
# (the cache tiers, the throttle and the database connections start on first use, per process).
preload_app = os.environ.get("GUNICORN_PRELOAD", "true").lower() not in ("0", "false", "no", "off")


def _serves_the_platform(server: Any) -> bool:
    """Whether this gunicorn serves the platform (not another WSGI app given on its command line)."""
    return getattr(server.app, "app_uri", None) in (None, wsgi_app)


def on_starting(server: Any) -> None:
    # Samples of a previous run would be summed into this one's.
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    _metrics_dir.mkdir(parents=True, exist_ok=True)


def when_ready(server: Any) -> None:
    # With the application preloaded, the lazy work of a first request (the URL configuration
    # resolved, every view imported) is done here too, once, before the workers fork.
    if preload_app and _serves_the_platform(server):
        from videoplatform.entry import warmup

        try:
            warmup.initialise()
        except Exception:  # the workers do it lazily then; never a reason not to start
            server.log.exception("warm-up in the master failed")


def post_worker_init(worker: Any) -> None:
    # In the worker, before it accepts a connection: its connections opened and its L1 filled
    # from L2 with the hottest keys (videoplatform/entry/warmup.py; WORKER_WARMUP_TIMEOUT bounds it).
    if _serves_the_platform(worker):
        from videoplatform.entry import warmup

        warmup.warm_worker(pool=getattr(worker, "tpool", None), threads=worker.cfg.threads)
    # Warm, and it accepts from here on: a worker rotation without Kubernetes (TTIN, wait for
    # this line, then TTOU: docs/reliability.md) waits for it.
    worker.log.info("Worker ready (pid: %s)", worker.pid)


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
