"""Webhook figures for ``/metrics``: attempts and deliveries by result, latencies, the backlog.

Workers count into one Redis hash (``JOBS_STATS_REDIS_URL``, as the task outcome counters), so
whichever web pod is scraped reports every worker's counts; the backlog (pending and due
deliveries, the oldest due one) is read from the database at scrape time. Without Redis (the
embedded default) only the backlog is reported.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from django.db.models import Count, Min, Q
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from videoplatform.jobs.stats import stats_redis

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from .targets import Response

logger = logging.getLogger(__name__)

KEY = "vp:webhooks:stats"
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
HISTOGRAMS = {
    "attempt": ("webhook_attempt_duration_seconds", "Time of one attempt: connect, send, the answer."),
    "first": (
        "webhook_first_attempt_delay_seconds",
        "From an event to the first attempt of each of its deliveries (the queue's delay).",
    ),
}


def _incr(fields: dict[str, float]) -> None:
    client = stats_redis()
    if client is None:
        return
    try:
        with client.pipeline(transaction=False) as pipe:
            for name, amount in fields.items():
                if isinstance(amount, int):
                    pipe.hincrby(KEY, name, amount)
                else:
                    pipe.hincrbyfloat(KEY, name, amount)
            pipe.execute()
    except Exception:  # a figure lost is better than a delivery failed
        logger.warning("could not count webhook figures", exc_info=True)


def _observe(histogram: str, value: float) -> dict[str, float]:
    fields: dict[str, float] = {f"h|{histogram}|count": 1, f"h|{histogram}|sum": float(value)}
    for bound in BUCKETS:
        if value <= bound:
            fields[f"h|{histogram}|{bound}"] = 1
    return fields


def attempt_result(response: Response) -> str:
    if response.status is not None:
        return f"{response.status // 100}xx"
    if response.error.startswith("refused"):
        return "refused"
    if response.error.startswith("timed out"):
        return "timeout"
    return "connection_error"


def attempt_made(response: Response, outcome: str) -> None:
    fields = {f"attempts|{attempt_result(response)}": 1, **_observe("attempt", response.duration_ms / 1000)}
    if outcome in ("succeeded", "failed"):
        fields[f"deliveries|{outcome}"] = 1
    _incr(fields)


def first_attempt(*, delay: float) -> None:
    _incr(_observe("first", max(0.0, delay)))


def event_recorded(event_type: str, deliveries: int) -> None:
    _incr({f"events|{event_type}": 1, "deliveries|created": deliveries})


def endpoint_disabled() -> None:
    _incr({"endpoints_disabled": 1})


def _counts() -> dict[str, float]:
    client = stats_redis()
    if client is None:
        return {}
    return {key.decode(): float(value) for key, value in client.hgetall(KEY).items()}


class WebhooksCollector:
    def describe(self) -> list[Metric]:
        return [GaugeMetricFamily("webhook_deliveries_pending", "")]

    def collect(self) -> Iterator[Metric]:
        yield from self._backlog()
        try:
            counts = _counts()
        except Exception:  # the counters' store is down: report the backlog alone
            logger.warning("webhook counters unavailable", exc_info=True)
            return
        attempts = CounterMetricFamily(
            "webhook_attempts",
            "Webhook attempts by result: 2xx, 3xx, 4xx, 5xx (the endpoint's answer), timeout, "
            "connection_error, refused (a private target).",
            labels=["result"],
        )
        deliveries = CounterMetricFamily(
            "webhook_deliveries",
            "Webhook deliveries by result: created, succeeded, failed (retries used up).",
            labels=["result"],
        )
        events = CounterMetricFamily(
            "webhook_events", "Events recorded for webhooks, by type.", labels=["type"]
        )
        for key, value in sorted(counts.items()):
            kind, _, label = key.partition("|")
            family = {"attempts": attempts, "deliveries": deliveries, "events": events}.get(kind)
            if family is not None:
                family.add_metric([label], value)
        yield from (attempts, deliveries, events)
        disabled = CounterMetricFamily(
            "webhook_endpoints_disabled", "Endpoints disabled after repeated failed deliveries."
        )
        disabled.add_metric([], counts.get("endpoints_disabled", 0.0))
        yield disabled
        for name, (metric, documentation) in HISTOGRAMS.items():
            buckets = [(str(bound), counts.get(f"h|{name}|{bound}", 0.0)) for bound in BUCKETS]
            buckets.append(("+Inf", counts.get(f"h|{name}|count", 0.0)))
            histogram = HistogramMetricFamily(metric, documentation)
            histogram.add_metric([], buckets, counts.get(f"h|{name}|sum", 0.0))
            yield histogram

    def _backlog(self) -> Iterator[Metric]:
        from .models import Delivery

        now = timezone.now()
        try:
            row: dict[str, Any] = Delivery.objects.filter(status=Delivery.Status.PENDING).aggregate(
                pending=Count("pk"),
                due=Count("pk", filter=Q(next_attempt_at__lte=now)),
                oldest=Min("next_attempt_at"),
            )
        except Exception:  # the database is down: no backlog figures this scrape
            logger.warning("webhook backlog unavailable", exc_info=True)
            return
        pending = GaugeMetricFamily(
            "webhook_deliveries_pending", "Deliveries not yet succeeded or failed (waiting or retrying)."
        )
        pending.add_metric([], float(row["pending"]))
        due = GaugeMetricFamily("webhook_deliveries_due", "Pending deliveries whose attempt is due now.")
        due.add_metric([], float(row["due"]))
        oldest = GaugeMetricFamily(
            "webhook_oldest_due_seconds", "How late the most overdue pending delivery is (0: none is due)."
        )
        late = (now - row["oldest"]).total_seconds() if row["oldest"] is not None else 0.0
        oldest.add_metric([], max(0.0, late))
        yield from (pending, due, oldest)


def register(registry: CollectorRegistry) -> None:
    if not any(isinstance(c, WebhooksCollector) for c in list(registry._collector_to_names)):
        registry.register(WebhooksCollector())  # type: ignore[arg-type]
