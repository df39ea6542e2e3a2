"""Prometheus metrics, correct under several gunicorn workers (multiprocess mode).

Set PROMETHEUS_MULTIPROC_DIR (the gunicorn config does) and every worker writes its samples
to that directory; ``/metrics`` aggregates them. ``/metrics`` is not public: see
``scrape_refusal``.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from .api.errors import error_response

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


# Labelled children looked up once per label set: ``labels()`` validates its arguments and takes
# the metric's lock on every call, and the hot paths count several samples per request. Label
# values here are bounded (routes, aliases, cache kinds); past this many sets, no more are kept.
_CHILDREN_MAX = 4096
_children: dict[tuple[int, tuple[str, ...]], Any] = {}


def labelled(metric: Any, *values: str) -> Any:
    """``metric.labels(*values)``, remembered: the same child object prometheus_client keeps."""
    key = (id(metric), values)
    child = _children.get(key)
    if child is None:
        child = metric.labels(*values)
        if len(_children) < _CHILDREN_MAX:
            _children[key] = child
    return child


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


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(allowed: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in allowed)


def _from_allowed_network(request: HttpRequest) -> bool:
    # The connection's own address: X-Forwarded-For is written by whoever sends the request.
    try:
        address = ipaddress.ip_address(str(request.META.get("REMOTE_ADDR") or ""))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in _networks(tuple(settings.METRICS_ALLOWED_NETWORKS)))


def _bearer_matches(request: HttpRequest) -> bool:
    token = str(settings.METRICS_TOKEN or "")
    if not token:
        return False
    scheme, _, credentials = str(request.META.get("HTTP_AUTHORIZATION", "")).partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(credentials.strip().encode(), token.encode())


def scrape_refusal(request: HttpRequest) -> HttpResponse | None:
    """Why this request may not read the metrics (the answer to send), or None when it may.

    - With ``METRICS_PORT``, /metrics exists only on that listener: elsewhere a 404, as for
      any unknown path. (gunicorn's ``SERVER_PORT`` is the port of the socket that accepted the
      connection, not the Host header.)
    - A connection from ``METRICS_ALLOWED_NETWORKS`` (loopback by default) may read them.
    - So may a request with ``Authorization: Bearer <METRICS_TOKEN>``.
    - Anyone else: 401 with a Bearer challenge when a token is configured, else 403.
    """
    port = int(settings.METRICS_PORT or 0)
    if port and str(request.META.get("SERVER_PORT", "")) != str(port):
        return error_response(404)
    if _from_allowed_network(request) or _bearer_matches(request):
        return None
    if settings.METRICS_TOKEN:
        response = error_response(401, message="The metrics need the scraper's bearer token.")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return error_response(403, message="The metrics are served to the monitoring network only.")


def metrics_view(request: HttpRequest) -> HttpResponse:
    refusal = scrape_refusal(request)
    if refusal is not None:
        return refusal
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    # Figures read at scrape time (queue depths, task outcomes): right in whichever process answers.
    body = generate_latest(registry) + generate_latest(SCRAPE_TIME_REGISTRY)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)


# --- Data layer (videoplatform/db) ------------------------------------------------------
DB_QUERIES = Counter(
    "db_queries",
    "SQL statements executed, by database alias and kind (read, write, other).",
    ["alias", "kind"],
)
DB_READS_ROUTED = Counter(
    "db_reads_routed",
    "Read routing decisions by the router, by the alias chosen and the reason "
    "(replica, replica_behind, pins_unavailable, fill_replica, fill_primary, no_replicas, "
    "replicas_unavailable, atomic, use_primary, unsafe_request, wrote, task, shard).",
    ["alias", "reason"],
)
DB_REPLICA_FALLBACKS = Counter(
    "db_replica_fallbacks",
    "Reads sent to a replica that could not serve them and ran on the primary instead.",
    ["alias"],
)
DB_REPLICA_LAG = Gauge(
    "db_replica_lag_seconds",
    "Replication lag of each replica at its last check, measured on the replica (NaN: unknown).",
    ["alias"],
    multiprocess_mode="mostrecent",
)
DB_REPLICA_IN_ROTATION = Gauge(
    "db_replica_in_rotation",
    "1 while the replica serves reads, 0 while it is out of rotation (unreachable or lagging).",
    ["alias"],
    multiprocess_mode="mostrecent",
)
DB_REPLICA_LSN_PROBES = Counter(
    "db_replica_lsn_probes",
    "Probes of a replica's replay position made because no known position was enough, by result "
    "(caught_up, behind, error).",
    ["alias", "result"],
)
DB_REPLICA_REPLAY_LSN = Gauge(
    "db_replica_replay_lsn_bytes",
    "The highest replay position (bytes since 0/0) this process has seen on each replica.",
    ["alias"],
    multiprocess_mode="max",
)
DB_REPLICA_CATCHUP = Histogram(
    "db_replica_catchup_seconds",
    "From the first read that found no replica at a needed position (a pin, a cache scope) to "
    "this process learning that a replica has replayed it.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
REQUEST_DB_QUERIES = Histogram(
    "http_request_db_queries",
    "SQL reads and writes per HTTP request, by method and view.",
    ["method", "view"],
    buckets=(0, 1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50, 100),
)
REQUEST_DB_SECONDS = Histogram(
    "http_request_db_seconds",
    "Time spent in SQL per HTTP request, by method and view.",
    ["method", "view"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)

# --- Shared answers to hot reads (videoplatform/entry/response_cache.py; docs/performance.md) -----------
RESPONSE_CACHE = Counter(
    "response_cache_requests",
    "API GETs by what the response cache did: hit (served a kept answer), miss (Django answered), "
    "stored (Django's answer was kept).",
    ["result"],
)

# --- Cache tiers (videoplatform/cache; docs/caching.md) ------------------------------------------
CACHE_REQUESTS = Counter(
    "cache_requests",
    "Cache lookups by tier (l1, l2), kind and result (hit, miss; stale: an expired L2 entry "
    "served while another request refreshes it).",
    ["tier", "kind", "result"],
)
CACHE_LOADS = Counter("cache_loads", "Database loads behind the cache tiers, by kind.", ["kind"])
CACHE_SHARED_LOADS = Counter(
    "cache_shared_loads",
    "Requests answered by another request's database load instead of their own (stampede control).",
    ["kind"],
)
CACHE_ERRORS = Counter(
    "cache_errors",
    "Cache operations that failed (Redis unreachable or timing out) and fell back, by tier and kind.",
    ["tier", "kind"],
)
CACHE_INVALIDATIONS = Counter(
    "cache_invalidations",
    "Invalidations sent, by kind and reach (scope: one id or the feed; kind: every entry of the kind).",
    ["kind", "reach"],
)
CACHE_FEED_CONNECTED = Gauge(
    "cache_invalidation_feed_connected",
    "Processes whose invalidation feed is connected, so that their L1 is in use.",
    multiprocess_mode="livesum",
)


# --- Background jobs (videoplatform/jobs; docs/jobs.md) ---------------------------------------------
class JobsCollector:
    """Queue depths read from the broker, and task outcomes counted by the workers (in Redis,
    or the database without Redis), when ``/metrics`` is scraped. An autoscaler scales each
    worker group on the sum of its queues' ``celery_queue_length``."""

    def describe(self) -> list[Metric]:
        return [
            GaugeMetricFamily("celery_queue_length", "", labels=["queue", "priority"]),
            GaugeMetricFamily("celery_queue_unacked", ""),
            GaugeMetricFamily("celery_broker_up", ""),
            CounterMetricFamily("celery_task_outcomes", "", labels=["queue", "task", "outcome"]),
        ]

    def collect(self) -> Iterator[Metric]:
        from videoplatform.jobs import stats

        report = stats.queue_depths()
        up = GaugeMetricFamily("celery_broker_up", "1 when the Celery broker answered this scrape, else 0.")
        up.add_metric([], 1.0 if report.up else 0.0)
        yield up
        depth = GaugeMetricFamily(
            "celery_queue_length",
            "Messages waiting in each queue, by priority (Redis: high, mid, low and step9 lists; "
            "RabbitMQ and the filesystem broker: all).",
            labels=["queue", "priority"],
        )
        for queue, priority, count in report.depths:
            depth.add_metric([queue, priority], float(count))
        yield depth
        if report.unacked is not None:
            unacked = GaugeMetricFamily(
                "celery_queue_unacked",
                "Messages delivered to workers and not yet acknowledged (running, prefetched or "
                "waiting for their retry time).",
            )
            unacked.add_metric([], float(report.unacked))
            yield unacked
        outcomes = CounterMetricFamily(
            "celery_task_outcomes",
            "Task runs by queue, task and outcome (succeeded, failed, retried, rejected, revoked, expired).",
            labels=["queue", "task", "outcome"],
        )
        try:
            for queue, task, outcome, count in stats.outcome_counts():
                outcomes.add_metric([queue, task, outcome], float(count))
        except Exception:  # the counters' store is down: report none
            logging.getLogger(__name__).warning("task outcome counters unavailable", exc_info=True)
        yield outcomes


SCRAPE_TIME_REGISTRY = CollectorRegistry(auto_describe=True)
SCRAPE_TIME_REGISTRY.register(JobsCollector())  # type: ignore[arg-type]
