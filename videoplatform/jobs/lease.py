"""Leases on the Redis broker's unacknowledged messages: a job comes back minutes after its worker
dies, never while the worker still runs it.

The Redis transport emulates acknowledgements: a message handed to a worker is kept in the
``unacked`` hash with its delivery time in the ``unacked_index`` sorted set, and any worker's
periodic sweep puts it back on its queue once it is older than the visibility timeout. With
``acks_late`` that is what brings back the job of a worker that was SIGKILLed or lost its node.
A fixed timeout forces a choice: longer than the longest job (else a long transcode is handed
to a second worker while the first still runs it), and then a dead worker's job waits that long.

``LeaseKeeper``, a consumer bootstep, takes the choice away: every ``CELERY_LEASE_INTERVAL``
seconds the worker's event loop moves the delivery time of every message it still holds
(running, waiting in the pool, or held for an ETA/countdown) to now. While the worker lives its
messages never expire, however long the job; when it dies the leases stop and its messages are
handed out again within ``CELERY_VISIBILITY_TIMEOUT`` plus one sweep. The update is ``ZADD XX``:
a message acknowledged (or already restored by another worker's sweep) in the meantime is not
brought back. The renewal runs in the worker's main process, next to the heartbeat file, so a
stuck event loop stops renewing as it stops the heartbeat.

Brokers other than Redis need none of this (RabbitMQ hands a message back when the connection
of the consumer holding it closes); the step does nothing there.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import bootsteps

logger = logging.getLogger(__name__)


def lease_interval() -> float:
    """Seconds between two renewals (0: leases off)."""
    from django.conf import settings

    return float(settings.CELERY_LEASE_INTERVAL)


def held_tags(channel: Any) -> list[str]:
    """Delivery tags of the messages this channel holds unacknowledged."""
    qos = getattr(channel, "qos", None)
    delivered = getattr(qos, "_delivered", None) or {}
    dirty = getattr(qos, "_dirty", None) or set()
    return [tag for tag in list(delivered) if tag not in dirty]


def renew(consumer: Any) -> int:
    """Moves the delivery time of every message ``consumer`` holds to now; returns how many.

    Never raises into the event loop: a broker that cannot be reached now is retried at the
    next interval (the consumer reconnects on its own).
    """
    task_consumer = getattr(consumer, "task_consumer", None)
    channel = getattr(task_consumer, "channel", None)
    index = getattr(channel, "unacked_index_key", None)
    if channel is None or index is None:
        return 0
    tags = held_tags(channel)
    if not tags:
        return 0
    now = time.time()
    try:
        with channel.conn_or_acquire() as client:
            client.zadd(index, dict.fromkeys(tags, now), xx=True)
    except Exception:  # a lost broker must not stop the event loop
        logger.warning("could not renew the leases of %d jobs", len(tags), exc_info=True)
        return 0
    return len(tags)


class LeaseKeeper(bootsteps.StartStopStep):
    """Consumer bootstep: renews the leases of the messages this worker holds (Redis broker)."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        self.timer_entry: Any = None
        super().__init__(parent, **kwargs)

    def start(self, parent: Any) -> None:
        interval = lease_interval()
        channel = getattr(getattr(parent, "task_consumer", None), "channel", None)
        if interval <= 0 or getattr(channel, "unacked_index_key", None) is None:
            return
        self.timer_entry = parent.timer.call_repeatedly(interval, renew, (parent,))

    def stop(self, parent: Any) -> None:
        if self.timer_entry is not None:
            self.timer_entry.cancel()
            self.timer_entry = None

    def shutdown(self, parent: Any) -> None:
        self.stop(parent)
