"""Domain events: what happened to a resource, published by the write that caused it.

A service calls ``publish_on_commit("video.ready", video)`` inside the transaction of its write.
The subscribers registered at start-up (the webhooks app, from its ``AppConfig.ready``) are
called at once, inside that transaction, so that what they record (an outbox row) commits or
rolls back with the write; anything they send out waits for the commit (``on_commit``). A
rolled-back write therefore publishes nothing, and a committed one cannot lose its event to a
crash between the commit and the send. Publishers know no subscriber: apps never import them.

``EVENT_TYPES`` is the catalogue; publishing a type that is not in it is a bug (ValueError).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import models
from django.utils import timezone

from videoplatform.ids import new_id

logger = logging.getLogger(__name__)

# type -> what it means. The live.* types are published by the live ingest once it exists.
EVENT_TYPES: dict[str, str] = {
    "video.created": "A video was created (its file may still be on its way).",
    "video.ready": "A video's media finished processing: it can be watched.",
    "video.failed": "A video's media could not be processed (or its upload was refused).",
    "video.deleted": "A video was deleted.",
    "live.connected": "A broadcaster connected to a live stream's ingest.",
    "live.active": "A live stream is on air: viewers can watch it.",
    "live.disconnected": "A broadcaster disconnected; the stream may resume within the reconnect window.",
    "live.ended": "A live stream ended.",
    "subscription.created": "A subscription started (a new one, or a plan change).",
    "subscription.canceled": "A subscription was canceled (at period end, or replaced by a plan change).",
}


@dataclass(frozen=True)
class DomainEvent:
    """One event: its stable id, type, when it happened, and the resource it is about."""

    type: str
    resource: models.Model
    id: str = field(default_factory=lambda: new_id("evt"))
    occurred_at: datetime = field(default_factory=timezone.now)

    @property
    def resource_label(self) -> str:
        """``app_label.model_name`` of the resource, e.g. ``videos.video``."""
        return self.resource._meta.label_lower


Subscriber = Callable[[DomainEvent], Any]
_subscribers: list[Subscriber] = []


def subscribe(subscriber: Subscriber) -> None:
    """Registers ``subscriber`` (once) for every event; call it from an ``AppConfig.ready``.

    It is called inside the publisher's transaction: it records, and defers sending to on_commit.
    """
    if subscriber not in _subscribers:
        _subscribers.append(subscriber)


def unsubscribe(subscriber: Subscriber) -> None:
    if subscriber in _subscribers:
        _subscribers.remove(subscriber)


def publish_on_commit(event_type: str, resource: models.Model) -> DomainEvent:
    """Publishes ``event_type`` about ``resource`` with the current transaction (see the module
    docstring); outside a transaction it is published at once. Returns the event."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"Unknown event type: {event_type!r}")
    event = DomainEvent(type=event_type, resource=resource)
    for subscriber in list(_subscribers):
        subscriber(event)
    return event
