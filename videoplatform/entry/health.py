"""Liveness, readiness and the staff-only detailed health page (source 2.2).

``/health`` answers while the process is up and touches no dependency. ``/ready`` checks
what a request needs: the primary database and Redis, and that the worker answering has
finished its warm-up (``videoplatform.entry.warmup``). Replicas are reported but do not
make a pod unready: reads fall back to the primary when a replica is unhealthy.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio
from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, JsonResponse
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from health_check.base import HealthCheck, HealthCheckResult
from health_check.checks import Cache, Database, Storage
from health_check.contrib.celery import Ping
from health_check.contrib.redis import Redis
from health_check.exceptions import ServiceUnavailable
from health_check.views import HealthCheckView

from streaming.media_tools import MediaTools


def redacted(url: str) -> str:
    """A URL with its password removed, for status pages."""
    parts = urlsplit(url)
    if parts.password:
        return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")).geturl()
    return url


def _redis_client() -> redis.asyncio.Redis:
    timeout = max(settings.REDIS_SOCKET_TIMEOUT, 1.0)
    return redis.asyncio.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=timeout, socket_timeout=timeout
    )


@dataclasses.dataclass
class CeleryBroker(HealthCheck):
    """The broker accepts a connection (queues can be written)."""

    def run(self) -> None:
        from videoplatform.celery import app

        try:
            with app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=2)
        except Exception as exc:
            raise ServiceUnavailable(f"broker unreachable: {type(exc).__name__}") from exc

    def __repr__(self) -> str:
        return f"CeleryBroker({redacted(str(settings.CELERY_BROKER_URL))})"


def readiness_checks() -> dict[str, tuple[HealthCheck, bool]]:
    """name -> (check, required for readiness)."""
    checks: dict[str, tuple[HealthCheck, bool]] = {"primary": (Database(alias="default"), True)}
    if settings.REDIS_URL:
        checks["redis"] = (Redis(client_factory=_redis_client), True)
    # Replicas are reported, never required: reads fall back to the primary (videoplatform.db).
    # A replica is "ok" while in rotation; else the reason (unreachable, lagging, not streaming).
    from videoplatform.db.health import ReplicaCheck

    for alias in settings.REPLICA_DATABASES:
        checks[alias] = (ReplicaCheck(alias=alias), False)
    return checks


async def _run(checks: list[HealthCheck]) -> list[HealthCheckResult]:
    return list(await asyncio.gather(*(check.get_result() for check in checks)))


def run_checks(checks: list[HealthCheck]) -> list[HealthCheckResult]:
    return asyncio.run(_run(checks))


@never_cache
def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
def ready(request: HttpRequest) -> JsonResponse:
    from . import warmup

    if warmup.state() == warmup.WARMING:
        return JsonResponse(
            {"status": "not_ready", "error": "warming up", "checks": {"warmup": warmup.WARMING}}, status=503
        )
    named = readiness_checks()
    results = run_checks([check for check, _ in named.values()])
    states: dict[str, Any] = {}
    errors: list[str] = []
    for (name, (_, required)), result in zip(named.items(), results, strict=True):
        states[name] = "ok" if result.error is None else f"down: {result.error}"
        if result.error is not None and required:
            errors.append(f"{name}: {result.error}")
    if errors:
        return JsonResponse({"status": "not_ready", "error": "; ".join(errors), "checks": states}, status=503)
    return JsonResponse({"status": "ready", "checks": states})


@method_decorator(staff_member_required, name="dispatch")
class DetailedHealthView(HealthCheckView):
    """Every dependency with its state, for staff (HTML, or ``?format=json``)."""

    def get_checks(self) -> list[HealthCheck]:  # type: ignore[override]
        from videoplatform.db.health import ReplicaCheck

        # The primary, "direct" and the shards answer SELECT 1; replicas report rotation and lag.
        checks: list[HealthCheck] = [
            ReplicaCheck(alias=alias) if alias in settings.REPLICA_DATABASES else Database(alias=alias)
            for alias in settings.DATABASES
        ]
        if settings.REDIS_URL:
            checks.append(Redis(client_factory=_redis_client))
        checks += [Cache(alias="default"), Storage(alias="default"), CeleryBroker()]
        # ffmpeg and ffprobe with their versions (uploads and transcoding need them).
        checks.append(MediaTools())
        if not str(settings.CELERY_BROKER_URL).startswith("filesystem://"):
            checks.append(Ping())
        return checks


detailed_health = DetailedHealthView.as_view()
