"""Scheduled scaling as shipped: the CronJobs that patch the HPA's minReplicas and maxReplicas.

The simulator reads the CronJob objects themselves (schedule, time zone, the patch they send),
so a change to the manifests changes the simulation.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

SCHEDULE_COMPONENT = "hpa-schedule"


@dataclass(frozen=True)
class BoundsChange:
    """One CronJob: every day at ``hour:minute`` in ``time_zone``, set the HPA's bounds."""

    name: str
    hpa: str
    hour: int
    minute: int
    time_zone: str
    min_replicas: int
    max_replicas: int

    def occurrences(self, start: datetime, end: datetime) -> list[datetime]:
        """Firing times in [start, end), as aware datetimes."""
        zone = ZoneInfo(self.time_zone)
        local = start.astimezone(zone)
        day = local.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
        found = []
        while day <= end.astimezone(zone):
            fire = day.replace(hour=self.hour, minute=self.minute)
            if start <= fire < end:
                found.append(fire)
            day += timedelta(days=1)
        return found


def is_schedule_cronjob(obj: Mapping[str, Any]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return obj.get("kind") == "CronJob" and labels.get("app.kubernetes.io/component") == SCHEDULE_COMPONENT


def bounds_change_from_cronjob(obj: Mapping[str, Any]) -> BoundsChange:
    """Read a schedule CronJob: ``M H * * *`` in ``spec.timeZone`` running ``kubectl patch``."""
    spec = obj["spec"]
    fields = str(spec["schedule"]).split()
    if len(fields) != 5 or fields[2:] != ["*", "*", "*"]:
        raise ValueError(f"{obj['metadata']['name']}: only daily schedules (M H * * *) are simulated")
    if not spec.get("timeZone"):
        raise ValueError(f"{obj['metadata']['name']}: the schedule needs an explicit timeZone")
    containers = spec["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    argv = [*containers[0].get("command", []), *containers[0].get("args", [])]
    if argv[:3] != ["kubectl", "patch", "horizontalpodautoscaler"]:
        raise ValueError(f"{obj['metadata']['name']}: expected `kubectl patch horizontalpodautoscaler NAME`")
    patch = json.loads(argv[argv.index("--patch") + 1])["spec"]
    return BoundsChange(
        name=obj["metadata"]["name"],
        hpa=argv[3],
        hour=int(fields[1]),
        minute=int(fields[0]),
        time_zone=str(spec["timeZone"]),
        min_replicas=int(patch["minReplicas"]),
        max_replicas=int(patch["maxReplicas"]),
    )


@dataclass(frozen=True)
class Schedule:
    changes: tuple[BoundsChange, ...]

    @classmethod
    def from_objects(cls, objects: Iterable[Mapping[str, Any]], hpa: str) -> Schedule:
        changes = tuple(bounds_change_from_cronjob(obj) for obj in objects if is_schedule_cronjob(obj))
        return cls(tuple(change for change in changes if change.hpa == hpa))

    def bounds_at(self, moment: datetime) -> tuple[int, int] | None:
        """The bounds set by the latest firing at or before ``moment`` (None without any)."""
        latest: tuple[datetime, BoundsChange] | None = None
        for change in self.changes:
            for fire in change.occurrences(moment - timedelta(days=2), moment + timedelta(seconds=1)):
                if latest is None or fire > latest[0]:
                    latest = (fire, change)
        if latest is None:
            return None
        return latest[1].min_replicas, latest[1].max_replicas

    def firings(self, start: datetime, end: datetime) -> list[tuple[datetime, BoundsChange]]:
        found = [(fire, change) for change in self.changes for fire in change.occurrences(start, end)]
        return sorted(found, key=lambda item: item[0])
