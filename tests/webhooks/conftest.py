from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from tests.webhooks.receiver import Receiver
from webhooks import services
from webhooks.models import Delivery


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def run_due(*, wait: float = 3.0) -> list[str]:
    """Runs the pending deliveries as the workers would (one attempt per task, first in line
    first) while any is due, or falls due within ``wait`` seconds; the outcomes in order."""
    outcomes: list[str] = []
    deadline = time.monotonic() + wait
    while True:
        due = list(
            Delivery.objects.filter(status=Delivery.Status.PENDING, next_attempt_at__lte=timezone.now())
            .order_by("event_id", "created_at")
            .values_list("pk", flat=True)
        )
        ran = [services.delivery_attempt(delivery_id=delivery_id) for delivery_id in due]
        made = [outcome for outcome in ran if outcome in ("succeeded", "retrying", "failed")]
        outcomes += made
        if made:
            continue
        left = deadline - time.monotonic()
        horizon = timezone.now() + timedelta(seconds=max(0.0, left))
        if (
            left <= 0
            or not Delivery.objects.filter(
                status=Delivery.Status.PENDING, next_attempt_at__lte=horizon
            ).exists()
        ):
            return outcomes
        time.sleep(0.02)


@pytest.fixture
def endpoint_for(receiver: Receiver) -> Any:
    """An endpoint of ``owner`` at ``path`` on the receiver, its ping delivered and forgotten."""

    def make(owner: Any, path: str = "/hook", events: list[str] | None = None) -> Any:
        endpoint = services.endpoint_create(owner=owner, url=receiver.url(path), events=events or ["*"])
        run_due()
        with receiver.lock:
            receiver.requests.clear()
        return endpoint

    return make
