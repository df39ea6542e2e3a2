"""The live figures Prometheus reads at scrape time (the ingest's autoscaling uses them)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from django.db import DatabaseError
from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily, Metric

from .models import LiveSession

logger = logging.getLogger(__name__)


class LiveCollector:
    """``live_sessions{status}``: broadcasts under way, by state (one indexed query per scrape)."""

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("live_sessions", "", labels=["status"])

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "live_sessions", "Live broadcasts under way, by state (the same in every pod).", labels=["status"]
        )
        try:
            counts = dict(
                LiveSession.objects.filter(status__in=LiveSession.ACTIVE)
                .values_list("status")
                .annotate(n=Count("id"))
                .values_list("status", "n")
            )
        except DatabaseError:
            logger.warning("live_sessions: the database did not answer this scrape")
            return
        for status in LiveSession.ACTIVE:
            family.add_metric([str(status)], counts.get(status, 0))
        yield family
