"""Numbers for operators: task outcomes (counted by the workers) and queue depths (read from the
broker when ``/metrics`` is scraped, so they are right whichever process answers).

Outcome counters live in a Redis hash shared by every worker (``JOBS_STATS_REDIS_URL``:
``REDIS_URL`` or a Redis broker by default), so that any web pod can export them; without Redis
(the embedded default) they are rows of ``TaskOutcomeCount``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F

from .priorities import REDIS_PRIORITY_STEPS, broker_kind, redis_step_label
from .queues import QUEUE_NAMES

logger = logging.getLogger(__name__)

OUTCOMES_KEY = "vp:jobs:outcomes"
# kombu's separator between a queue's name and its priority step ("<queue>\x06\x16<step>").
REDIS_PRIORITY_SEP = "\x06\x16"
REDIS_UNACKED_KEY = "unacked"
BROKER_TIMEOUT = 2.0


@cache
def _stats_client(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0)


def stats_redis() -> Any | None:
    url = settings.JOBS_STATS_REDIS_URL
    return _stats_client(url) if url else None


def outcome_record(*, queue: str, task: str, outcome: str) -> None:
    """Counts one outcome (succeeded, failed, retried, rejected, revoked) of a task."""
    client = stats_redis()
    if client is not None:
        client.hincrby(OUTCOMES_KEY, f"{queue}|{task}|{outcome}", 1)
        return
    from .models import TaskOutcomeCount

    with transaction.atomic():
        updated = TaskOutcomeCount.objects.filter(queue=queue, task=task, outcome=outcome).update(
            count=F("count") + 1
        )
        if updated:
            return
        try:
            with transaction.atomic():
                TaskOutcomeCount.objects.create(queue=queue, task=task, outcome=outcome, count=1)
        except IntegrityError:  # another worker created it first
            TaskOutcomeCount.objects.filter(queue=queue, task=task, outcome=outcome).update(
                count=F("count") + 1
            )


def outcome_counts() -> list[tuple[str, str, str, int]]:
    """(queue, task, outcome, count) for every outcome ever counted."""
    client = stats_redis()
    if client is not None:
        rows = []
        for raw_key, raw_count in client.hgetall(OUTCOMES_KEY).items():
            parts = raw_key.decode().split("|")
            if len(parts) == 3:
                rows.append((parts[0], parts[1], parts[2], int(raw_count)))
        return sorted(rows)
    from .models import TaskOutcomeCount

    return sorted(TaskOutcomeCount.objects.values_list("queue", "task", "outcome", "count"))


@dataclass
class QueueReport:
    """The broker as seen now: reachable or not, and messages waiting per queue and priority."""

    broker: str
    up: bool
    # (queue, priority label, messages waiting); the label is "all" where the broker does not
    # say (RabbitMQ keeps its priorities inside one queue) or has none (filesystem).
    depths: list[tuple[str, str, int]] = field(default_factory=list)
    # Delivered to a worker and not yet acknowledged (running, prefetched or waiting for an ETA).
    unacked: int | None = None
    error: str = ""

    def total(self, queue: str) -> int:
        return sum(depth for name, _, depth in self.depths if name == queue)


def redis_priority_key(queue: str, step: int) -> str:
    return f"{queue}{REDIS_PRIORITY_SEP}{step}" if step else queue


def _redis_depths(url: str, queues: tuple[str, ...], prefix: str = "") -> QueueReport:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=BROKER_TIMEOUT, socket_timeout=BROKER_TIMEOUT)
    try:
        with client.pipeline(transaction=False) as pipe:
            for queue in queues:
                for step in REDIS_PRIORITY_STEPS:
                    pipe.llen(prefix + redis_priority_key(queue, step))
            pipe.hlen(prefix + REDIS_UNACKED_KEY)
            values = pipe.execute()
    finally:
        client.close()
    report = QueueReport(broker="redis", up=True, unacked=int(values[-1]))
    index = 0
    for queue in queues:
        for step in REDIS_PRIORITY_STEPS:
            report.depths.append((queue, redis_step_label(step), int(values[index])))
            index += 1
    return report


def _amqp_depths(url: str, queues: tuple[str, ...]) -> QueueReport:
    from kombu import Connection

    report = QueueReport(broker="amqp", up=True)
    with Connection(url, connect_timeout=BROKER_TIMEOUT) as connection:
        connection.ensure_connection(max_retries=1)
        channel = connection.channel()
        for queue in queues:
            try:
                declared = channel.queue_declare(queue=queue, passive=True)
                report.depths.append((queue, "all", int(declared.message_count)))
            except connection.channel_errors:  # not declared yet: nothing waits in it
                report.depths.append((queue, "all", 0))
                channel = connection.channel()  # the failed declare closed the channel
    return report


def _filesystem_depths(folder: str, queues: tuple[str, ...]) -> QueueReport:
    names = os.listdir(folder) if os.path.isdir(folder) else []
    report = QueueReport(broker="filesystem", up=True)
    for queue in queues:
        suffix = f".{queue}.msg"
        report.depths.append((queue, "all", sum(1 for name in names if name.endswith(suffix))))
    return report


def queue_depths(queues: tuple[str, ...] = QUEUE_NAMES, *, app: Any = None) -> QueueReport:
    """Messages waiting in each queue (and each Redis priority step), read from the broker now.

    ``app`` is the Celery app whose broker to read: the current one (the project's, which
    ``videoplatform/celery.py`` makes current) unless given.
    """
    if app is None:
        from celery import current_app

        app = current_app

    url = str(app.conf.broker_url or "")
    kind = broker_kind(url)
    try:
        if kind == "redis" and not url.startswith("sentinel"):
            prefix = str((app.conf.broker_transport_options or {}).get("global_keyprefix") or "")
            return _redis_depths(url, queues, prefix)
        if kind == "amqp":
            return _amqp_depths(url, queues)
        if kind == "filesystem":
            options = app.conf.broker_transport_options or {}
            folder = options.get("data_folder_in") or str(settings.CELERY_FILESYSTEM_BROKER_DIR)
            return _filesystem_depths(str(folder), queues)
    except Exception as exc:  # noqa: BLE001 - a broker outage is a reading, not an error
        logger.warning("could not read queue depths from the broker: %s", exc)
        return QueueReport(broker=kind, up=False, error=f"{type(exc).__name__}: {exc}")
    return QueueReport(broker=kind, up=False, error="queue depths are not read from this broker")
