"""Prometheus metrics, correct under several gunicorn workers (multiprocess mode).

Set PROMETHEUS_MULTIPROC_DIR (the gunicorn config does) and every worker writes its samples
to that directory; ``/metrics`` aggregates them.
"""

from __future__ import annotations

import os

from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter(
    "http_requests",
    "HTTP requests handled, by method, view, status and kind (api, probe, metrics, admin, other).",
    ["method", "view", "status", "kind"],
)
LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency in seconds, by method, view and kind.",
    ["method", "view", "kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1, 2, 5, 10),
)


def request_kind(path: str) -> str:
    if path in ("/health", "/ready") or path.startswith("/health/"):
        return "probe"
    if path == "/metrics":
        return "metrics"
    if path.startswith("/api/"):
        return "api"
    if path.startswith("/admin/"):
        return "admin"
    return "other"


def metrics_view(request: HttpRequest) -> HttpResponse:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
