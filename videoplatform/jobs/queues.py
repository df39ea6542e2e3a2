"""The queues, what runs on them, and each queue's priority and retry policy (source 6.2).

| queue | priority | retries |
|---|---|---|
| email | high | 5 |
| notification | high | 3 (webhook deliveries: their own retries, for days, in webhooks.services) |
| transcoding | mid | 3 (exponential backoff from 5 s, in streaming.tasks) |
| indexing | mid | 3 |
| default | mid | per task (beat jobs, view-count flushes) |
| recommendation | low | 1 |

Tasks are routed by name: the first pattern that matches wins; anything else runs on
``default``. A caller may still pass ``priority=`` to ``apply_async`` (see ``priorities``).
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from .priorities import Level, priority_for


@dataclass(frozen=True)
class QueuePolicy:
    name: str
    level: Level
    max_retries: int
    purpose: str


# In order of importance: on Redis, a worker consuming several queues looks at them in this
# order within one priority step (queue_order_strategy "priority").
QUEUES: tuple[QueuePolicy, ...] = (
    QueuePolicy("email", Level.HIGH, 5, "transactional email"),
    QueuePolicy("notification", Level.HIGH, 3, "a user's inbox, webhook deliveries"),
    QueuePolicy("transcoding", Level.MID, 3, "the ffmpeg HLS ladder"),
    QueuePolicy("indexing", Level.MID, 3, "the search documents"),
    QueuePolicy("default", Level.MID, 3, "scheduled maintenance and everything else"),
    QueuePolicy("recommendation", Level.LOW, 1, "related videos"),
)
QUEUE_NAMES = tuple(queue.name for queue in QUEUES)
POLICIES = {queue.name: queue for queue in QUEUES}

# (task-name pattern, queue), first match wins.
ROUTES: tuple[tuple[str, str], ...] = (
    ("streaming.plays.flush_view_counts", "default"),
    ("streaming.tasks.*", "transcoding"),
    ("webhooks.tasks.*", "notification"),
    ("*.tasks.send_*", "email"),
    ("*.tasks.notify_*", "notification"),
    ("*.tasks.index_*", "indexing"),
    ("*.tasks.recommend_*", "recommendation"),
)
DEFAULT_QUEUE = "default"


def routes_for(broker_url: str | None) -> dict[str, dict[str, Any]]:
    """Celery's ``task_routes``: each pattern's queue and that queue's priority on this broker,
    and a catch-all so that no task goes without a priority (on Redis an unset one would land
    in the top bucket). A ``priority=`` given to ``apply_async`` still wins."""
    routes: dict[str, dict[str, Any]] = {
        pattern: {"queue": queue, "priority": priority_for(POLICIES[queue].level, broker_url)}
        for pattern, queue in ROUTES
    }
    routes["*"] = {
        "queue": DEFAULT_QUEUE,
        "priority": priority_for(POLICIES[DEFAULT_QUEUE].level, broker_url),
    }
    return routes


def queue_for(task_name: str) -> str:
    for pattern, queue in ROUTES:
        if fnmatchcase(task_name, pattern):
            return queue
    return DEFAULT_QUEUE


def policy(queue: str) -> QueuePolicy:
    return POLICIES[queue]


def max_retries(queue: str) -> int:
    """For task decorators: ``@shared_task(max_retries=max_retries("email"))``."""
    return POLICIES[queue].max_retries
