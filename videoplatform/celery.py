"""The Celery app: broker, queues and routes.

With no CELERY_BROKER_URL the broker is kombu's filesystem transport, so the embedded
default runs a real worker process with no server.
"""

from __future__ import annotations

import os
from pathlib import Path

from celery import Celery
from kombu import Exchange, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.dev")

app = Celery("videoplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")

QUEUE_NAMES = ("default", "transcoding", "email", "notification", "recommendation", "indexing")

app.conf.update(
    task_queues=[Queue(name, Exchange(name), routing_key=name) for name in QUEUE_NAMES],
    task_default_queue="default",
    task_default_exchange="default",
    task_default_routing_key="default",
    task_routes={
        "streaming.tasks.*": {"queue": "transcoding"},
        "*.tasks.send_*": {"queue": "email"},
        "*.tasks.notify_*": {"queue": "notification"},
        "*.tasks.index_*": {"queue": "indexing"},
        "*.tasks.recommend_*": {"queue": "recommendation"},
    },
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
