"""The Celery app: broker, queues, routes, priorities and the beat schedule.

With no CELERY_BROKER_URL the broker is kombu's filesystem transport, so the embedded
default runs a real worker process with no server. Queues, their priorities and retry
policies are in ``videoplatform.jobs.queues``; the beat schedule in ``videoplatform.jobs.schedule``;
docs/jobs.md explains them.
"""

from __future__ import annotations

import os
from pathlib import Path

from celery import Celery
from kombu import Exchange, Queue

from videoplatform.jobs.heartbeat import Heartbeat
from videoplatform.jobs.lease import LeaseKeeper
from videoplatform.jobs.priorities import AMQP_MAX_PRIORITY, REDIS_PRIORITY_STEPS, broker_kind
from videoplatform.jobs.queues import QUEUES, routes_for

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.dev")

app = Celery("videoplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")

QUEUE_NAMES = tuple(queue.name for queue in QUEUES)
# Workers keep a liveness file fresh when WORKER_HEARTBEAT_FILE is set (the pods' probe).
app.steps["consumer"].add(Heartbeat)
# Redis broker: workers renew the messages they hold, so a dead worker's job comes back in minutes.
app.steps["consumer"].add(LeaseKeeper)


app.conf.update(
    task_queues=[Queue(name, Exchange(name), routing_key=name) for name in QUEUE_NAMES],
    task_default_queue="default",
    task_default_exchange="default",
    task_default_routing_key="default",
    task_routes=routes_for(None),  # made for the configured broker by configure_jobs()
    task_serializer="json",
    accept_content=["json"],
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_reject_on_worker_lost=True,
    broker_connection_retry_on_startup=True,
    timezone="UTC",
)


def _configure_filesystem_broker() -> None:
    from django.conf import settings

    if not str(app.conf.broker_url or "").startswith("filesystem://"):
        return
    folder = Path(settings.CELERY_FILESYSTEM_BROKER_DIR)
    processed = folder / "processed"
    results = str(app.conf.result_backend or "")
    extra = [Path(results.removeprefix("file://"))] if results.startswith("file://") else []
    for path in (folder, processed, *extra):
        path.mkdir(parents=True, exist_ok=True)
    app.conf.broker_transport_options = {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "processed_folder": str(processed),
        "store_processed": False,
    }


app.on_after_configure.connect(lambda sender, **kwargs: _configure_filesystem_broker(), weak=False)
app.autodiscover_tasks()


def configure_jobs() -> None:
    """Broker-specific priorities, long-job safety and the beat schedule (docs/jobs.md).

    The beat schedule includes the media pipeline's view-count flush (its entry name and task).
    """
    from django.conf import settings

    from videoplatform.jobs.schedule import beat_schedule

    kind = broker_kind(app.conf.broker_url)
    if kind == "redis":
        app.conf.broker_transport_options = {
            # Unacknowledged messages come back after this long without a lease renewal
            # (videoplatform/jobs/lease.py), looked for every CELERY_RESTORE_INTERVAL seconds.
            "visibility_timeout": settings.CELERY_VISIBILITY_TIMEOUT,
            "unacked_restore_interval": settings.CELERY_RESTORE_INTERVAL,
            "unacked_restore_throttle": 1,
            # Within a priority step, queues are read in the order of QUEUES.
            "queue_order_strategy": "priority",
            "priority_steps": list(REDIS_PRIORITY_STEPS),
            "sep": "\x06\x16",
            **(
                {"global_keyprefix": settings.CELERY_BROKER_KEY_PREFIX}
                if settings.CELERY_BROKER_KEY_PREFIX
                else {}
            ),
            **(app.conf.broker_transport_options or {}),
        }
    elif kind == "amqp":
        app.conf.task_queues = [
            Queue(
                queue.name,
                Exchange(queue.name),
                routing_key=queue.name,
                queue_arguments={"x-max-priority": AMQP_MAX_PRIORITY},
            )
            for queue in QUEUES
        ]
        app.conf.task_queue_max_priority = AMQP_MAX_PRIORITY
    app.conf.update(
        task_routes=routes_for(app.conf.broker_url),
        task_soft_time_limit=settings.CELERY_TASK_SOFT_TIME_LIMIT,
        task_time_limit=settings.CELERY_TASK_TIME_LIMIT,
        worker_soft_shutdown_timeout=settings.CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT,
        worker_enable_soft_shutdown_on_idle=kind == "redis",
        beat_schedule_filename=str(settings.CELERY_BEAT_SCHEDULE_FILENAME),
        beat_schedule=beat_schedule(),
    )


app.on_after_configure.connect(lambda sender, **kwargs: configure_jobs(), weak=False)
