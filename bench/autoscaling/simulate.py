"""Run the shipped HPA (and its schedule) against a load profile, one simulated second at a time.

The cluster model, kept deliberately small (every figure is a parameter of ``PodModel``):

- The Service spreads the offered load evenly over Ready pods. A pod serves at most
  ``capacity_rps``; the excess waits or is shed (counted as overload).
- A new pod is Pending for ``startup_seconds`` (scheduling, image pull, gunicorn boot, first
  readiness probe), then Ready. The ReplicaSet removes Pending pods first, then the newest.
- A Ready pod's capacity grows with its age (``ramp``: the fraction of ``capacity_rps`` it serves
  in each span of seconds after it became Ready, as the performance harness measures a new
  server under load; full capacity after the last span). The Service still gives it an even
  share: what it cannot serve waits or is shed like any excess.
- The request-rate metric is what the prometheus-adapter rule serves: the rate of *completed*
  requests over ``rate_window_seconds``, first available ``rate_delay_seconds`` after the pod is
  Ready (two scrapes). Because it counts served requests it cannot read above the capacity.
  ``metric_source="offered"`` feeds the offered load instead (an arrival-side counter), for
  comparison.
- CPU and memory follow the served rate linearly (metrics-server, 15 s windows), against the
  requests read from the Deployment.

The controller (``hpa.HorizontalController``) reconciles every 15 s; the schedule's CronJobs
patch the bounds ``cron_latency_seconds`` after they fire.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import yaml

from .hpa import (
    SYNC_PERIOD_SECONDS,
    Decision,
    HorizontalController,
    HpaSpec,
    MetricSample,
    PodSample,
    parse_quantity_milli,
)
from .load import LoadProfile
from .schedule import Schedule

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MANIFESTS = REPO_ROOT / "k8s" / "base"
REQUEST_RATE_METRIC = "http_requests_per_second"
# Measured per-pod capacity: the performance harness's mix throughput per gunicorn core (796
# req/s, every P95 inside its target; docs/performance.md) for a pod of 2 cores, rounded down.
DEFAULT_CAPACITY_RPS = 1500.0
# A new pod's share of its steady-state throughput in each span of seconds after it is Ready:
# ((end of span in seconds, fraction), ...), full capacity afterwards. From the performance
# harness's last --ramp-only run (docs/performance.md, "A new pod at full speed"): a warmed
# process replaying the mix served 74 % of its steady requests in its first 5 s of CPU and 96 %
# in the next 5 (a cold one 68 % and 90 %); ``ramp_from_report`` reads a run's wire figures.
DEFAULT_RAMP: tuple[tuple[float, float], ...] = ((5.0, 0.74), (10.0, 0.96))


def ramp_from_report(
    report: Mapping[str, Any], label: str = "warmed", span: float = 5.0
) -> tuple[tuple[float, float], ...]:
    """A ramp from a ``python -m bench.perf`` report (its ``ramps``): the new server's req/s per
    ``span`` seconds over its first 30 s, as fractions of the steady state it was measured against."""
    rows = [row for row in report.get("ramps") or [] if row.get("label") == label]
    if not rows or not rows[0].get("reference_rps"):
        raise LookupError(f"the report has no new-server ramp labelled {label!r}")
    row = rows[0]
    per_second = [cell["rps"] for cell in row["per_second"]]
    ramp = []
    for start in range(0, min(len(per_second), 30), int(span)):
        chunk = per_second[start : start + int(span)]
        if chunk:
            fraction = min(1.0, sum(chunk) / len(chunk) / row["reference_rps"])
            ramp.append((float(start + len(chunk)), round(fraction, 3)))
    return tuple(ramp)


@dataclass(frozen=True)
class PodModel:
    capacity_rps: float = DEFAULT_CAPACITY_RPS
    startup_seconds: float = 45.0
    rate_window_seconds: float = 60.0
    rate_delay_seconds: float = 30.0
    resource_window_seconds: float = 15.0
    metric_source: str = "served"  # or "offered"
    # Placeholders until measured: 600 m CPU per 1,000 req/s on top of 50 m idle, so the request
    # rate (not CPU) leads as the source intends; memory is mostly the workers' baseline.
    cpu_idle_millicores: float = 50.0
    cpu_millicores_per_rps: float = 0.6
    memory_idle_mib: float = 420.0
    memory_mib_per_rps: float = 0.1
    cpu_request_millicores: int = 1000
    memory_request_mib: int = 1024
    ramp: tuple[tuple[float, float], ...] = DEFAULT_RAMP

    def capacity_at(self, age: float) -> float:
        """What a pod Ready for ``age`` seconds serves at most (req/s)."""
        for end, fraction in self.ramp:
            if age < end:
                return self.capacity_rps * fraction
        return self.capacity_rps


@dataclass
class Manifests:
    hpa: HpaSpec
    schedule: Schedule
    cpu_request_millicores: int
    memory_request_mib: int

    @classmethod
    def load(cls, directory: Path = DEFAULT_MANIFESTS, hpa_name: str = "api") -> Manifests:
        objects = list(load_objects(directory))
        hpa_obj = _find(objects, "HorizontalPodAutoscaler", hpa_name)
        target = hpa_obj["spec"]["scaleTargetRef"]
        deployment = _find(objects, target["kind"], target["name"])
        containers = deployment["spec"]["template"]["spec"]["containers"]
        requests = containers[0]["resources"]["requests"]
        return cls(
            hpa=HpaSpec.from_manifest(hpa_obj),
            schedule=Schedule.from_objects(objects, hpa_name),
            cpu_request_millicores=parse_quantity_milli(requests["cpu"]),
            memory_request_mib=parse_quantity_milli(requests["memory"]) // 1000 // 2**20,
        )


def load_objects(directory: Path) -> Iterable[dict[str, Any]]:
    """Every Kubernetes object in the YAML files under ``directory`` (kustomization files aside)."""
    for path in sorted(directory.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            if isinstance(document, dict) and "kind" in document:
                yield document


def _find(objects: Sequence[Mapping[str, Any]], kind: str, name: str) -> Mapping[str, Any]:
    for obj in objects:
        if obj.get("kind") == kind and obj.get("metadata", {}).get("name") == name:
            return obj
    raise LookupError(f"no {kind} named {name!r} in the manifests")


@dataclass
class Pod:
    name: str
    created: float
    ready_at: float


@dataclass
class Timeline:
    """Per-second series (index = second since the start) and the controller's decisions."""

    profile: LoadProfile
    model: PodModel
    start: datetime
    target_rps: float
    offered: np.ndarray
    replicas: np.ndarray  # spec.replicas, what the HPA set
    ready: np.ndarray  # Ready pods, what serves traffic
    per_pod_offered: np.ndarray  # offered load / Ready pods
    served: np.ndarray
    capacity: np.ndarray  # what the Ready pods can serve together, each at its age's capacity
    min_bound: np.ndarray
    max_bound: np.ndarray
    decisions: list[Decision] = field(default_factory=list)
    bound_changes: list[tuple[float, int, int, str]] = field(default_factory=list)

    @property
    def seconds(self) -> np.ndarray:
        return np.arange(len(self.offered))

    def clock(self, t: float) -> datetime:
        return self.start + timedelta(seconds=float(t))


def simulate(
    profile: LoadProfile,
    manifests: Manifests,
    model: PodModel | None = None,
    *,
    start_date: str = "2025-01-15",
    follow_schedule: bool | None = None,
    cron_latency_seconds: float = 10.0,
    warmup_seconds: int = 900,
) -> Timeline:
    """Simulate ``profile`` with the shipped HPA; ``follow_schedule`` overrides the profile's."""
    model = model or PodModel(
        cpu_request_millicores=manifests.cpu_request_millicores,
        memory_request_mib=manifests.memory_request_mib,
    )
    spec = manifests.hpa
    use_schedule = profile.follow_schedule if follow_schedule is None else follow_schedule
    zone = ZoneInfo(manifests.schedule.changes[0].time_zone) if manifests.schedule.changes else UTC
    start = datetime.fromisoformat(start_date).replace(
        hour=profile.start_clock.hour, minute=profile.start_clock.minute, tzinfo=zone
    )
    bounds = (spec.min_replicas, spec.max_replicas)
    changes: list[tuple[float, int, int, str]] = []
    if use_schedule:
        bounds = manifests.schedule.bounds_at(start) or bounds
        end = start + timedelta(seconds=profile.duration_seconds)
        for fire, change in manifests.schedule.firings(start, end):
            at = (fire - start).total_seconds() + cron_latency_seconds
            changes.append((at, change.min_replicas, change.max_replicas, change.name))
    target_rps = _request_rate_target(spec)

    controller = HorizontalController()
    pods: list[Pod] = []
    serial = 0

    def add_pods(count: int, now: float, ready_at: float | None = None) -> None:
        nonlocal serial
        for _ in range(count):
            serial += 1
            pods.append(
                Pod(f"api-{serial}", now, now + model.startup_seconds if ready_at is None else ready_at)
            )

    def remove_pods(count: int, now: float) -> None:
        # ReplicaSet victims: not-ready pods first, then the most recently ready.
        order = sorted(pods, key=lambda p: (p.ready_at <= now, -p.ready_at))
        for victim in order[:count]:
            pods.remove(victim)

    first = profile.rate(0.0)
    initial = min(max(math.ceil(first / target_rps), bounds[0]), bounds[1])
    add_pods(initial, -float(warmup_seconds), ready_at=-float(warmup_seconds))
    replicas = initial

    total = warmup_seconds + profile.duration_seconds
    served_per_pod = np.zeros(total)  # what each Ready pod served, by second since -warmup
    offered_per_pod = np.zeros(total)
    n = profile.duration_seconds
    tl = Timeline(
        profile=profile,
        model=model,
        start=start,
        target_rps=target_rps,
        offered=np.zeros(n),
        replicas=np.zeros(n, dtype=int),
        ready=np.zeros(n, dtype=int),
        per_pod_offered=np.zeros(n),
        served=np.zeros(n),
        capacity=np.zeros(n),
        min_bound=np.zeros(n, dtype=int),
        max_bound=np.zeros(n, dtype=int),
        bound_changes=changes,
    )
    pending_changes = sorted(changes)
    for index in range(total):
        now = float(index - warmup_seconds)
        while pending_changes and pending_changes[0][0] <= now:
            _, low, high, _ = pending_changes.pop(0)
            bounds = (low, high)
        offered = profile.rate(max(now, 0.0))
        capacities = [model.capacity_at(now - pod.ready_at) for pod in pods if pod.ready_at <= now]
        ready = len(capacities)
        per_pod = offered / ready if ready else math.inf
        # Each Ready pod gets an even share and serves what its age allows; the HPA averages.
        served_per_pod[index] = sum(min(per_pod, cap) for cap in capacities) / ready if ready else 0.0
        offered_per_pod[index] = per_pod if ready else 0.0
        if now >= 0:
            i = int(now)
            tl.offered[i] = offered
            tl.replicas[i] = replicas
            tl.ready[i] = ready
            tl.per_pod_offered[i] = per_pod if ready else math.nan
            tl.served[i] = served_per_pod[index] * ready
            tl.capacity[i] = sum(capacities)
            tl.min_bound[i], tl.max_bound[i] = bounds
        if index % SYNC_PERIOD_SECONDS == 0:
            samples = [
                _observe(pod, now, index, warmup_seconds, served_per_pod, offered_per_pod, model)
                for pod in pods
            ]
            decision = controller.reconcile(spec.with_bounds(*bounds), replicas, samples, now)
            if now >= 0:
                tl.decisions.append(decision)
            if decision.desired_replicas > replicas:
                add_pods(decision.desired_replicas - replicas, now)
            elif decision.desired_replicas < replicas:
                remove_pods(replicas - decision.desired_replicas, now)
            replicas = decision.desired_replicas
    return tl


def _request_rate_target(spec: HpaSpec) -> float:
    for metric in spec.metrics:
        if metric.type == "Pods" and metric.name == REQUEST_RATE_METRIC:
            return metric.target / 1000
    raise LookupError(f"the HPA has no Pods metric {REQUEST_RATE_METRIC!r}")


def _window_mean(series: np.ndarray, end_index: int, seconds: float, since_index: int) -> float:
    start = max(end_index - int(seconds) + 1, since_index, 0)
    return float(series[start : end_index + 1].mean())


def _observe(
    pod: Pod,
    now: float,
    index: int,
    warmup: int,
    served_per_pod: np.ndarray,
    offered_per_pod: np.ndarray,
    model: PodModel,
) -> PodSample:
    """The pod as the HPA sees it at ``now``: phase, readiness, requests and metric samples."""
    requests = {"cpu": model.cpu_request_millicores, "memory": model.memory_request_mib * 2**20 * 1000}
    if pod.ready_at > now:
        return PodSample(pod.name, phase="Pending", ready=False, start_time=pod.created, requests=requests)
    ready_index = int(pod.ready_at) + warmup
    metrics: dict[str, MetricSample] = {}
    age = now - pod.ready_at
    if age >= model.rate_delay_seconds:
        source = offered_per_pod if model.metric_source == "offered" else served_per_pod
        rps = _window_mean(source, index, model.rate_window_seconds, ready_index)
        metrics[REQUEST_RATE_METRIC] = MetricSample(round(rps * 1000), now, model.rate_window_seconds)
    if age >= model.resource_window_seconds:
        served = _window_mean(served_per_pod, index, model.resource_window_seconds, ready_index)
        cpu = model.cpu_idle_millicores + model.cpu_millicores_per_rps * served
        memory_mib = model.memory_idle_mib + model.memory_mib_per_rps * served
        window = model.resource_window_seconds
        metrics["cpu"] = MetricSample(round(cpu), now, window)
        metrics["memory"] = MetricSample(round(memory_mib * 2**20 * 1000), now, window)
    return PodSample(
        pod.name,
        phase="Running",
        ready=True,
        start_time=pod.created,
        ready_transition_time=pod.ready_at,
        requests=requests,
        metrics=metrics,
    )


# --- What the timeline implies -------------------------------------------------------------------


def first_time(mask: np.ndarray, after: float = 0.0) -> float | None:
    """The first second at or after ``after`` where ``mask`` holds."""
    hits = np.flatnonzero(mask[int(after) :])
    return float(hits[0] + int(after)) if hits.size else None


def seconds_true(mask: np.ndarray, start: float = 0.0, end: float | None = None) -> int:
    return int(np.count_nonzero(mask[int(start) : None if end is None else int(end)]))


@dataclass(frozen=True)
class StepFigures:
    """Timings around a load step that starts at ``rise`` and ends at ``fall``."""

    rise: float
    fall: float
    replicas_before: int
    replicas_peak: int
    scale_up_seconds: float | None  # rise -> replicas reach their peak
    above_target_seconds: int  # per-pod offered load above the HPA target
    above_capacity_seconds: int  # per-pod offered load above capacity (queueing or shedding)
    scale_down_seconds: float | None  # fall -> replicas back at the minimum


def step_figures(tl: Timeline, rise: float, fall: float) -> StepFigures:
    before = int(tl.replicas[int(rise) - 1])
    peak = int(tl.replicas[int(rise) : int(fall)].max())
    reached = first_time(tl.replicas >= peak, rise)
    low = int(tl.min_bound[-1])
    back = first_time(tl.replicas <= low, fall)
    per_pod = np.nan_to_num(tl.per_pod_offered, nan=np.inf)
    return StepFigures(
        rise=rise,
        fall=fall,
        replicas_before=before,
        replicas_peak=peak,
        scale_up_seconds=None if reached is None else reached - rise,
        above_target_seconds=seconds_true(per_pod > tl.target_rps * 1.0001, rise, fall),
        above_capacity_seconds=seconds_true(per_pod > tl.model.capacity_rps * 1.0001, rise, fall),
        scale_down_seconds=None if back is None else back - fall,
    )


def replica_changes(tl: Timeline) -> list[tuple[float, int, int, str]]:
    """(second, from, to, why) for every change of spec.replicas."""
    rows = []
    for decision in tl.decisions:
        if decision.desired_replicas != decision.current_replicas:
            why = decision.reason or decision.limited_by
            if decision.limited_by and decision.limited_by not in ("DesiredWithinRange", why):
                why = f"{why} ({decision.limited_by})"
            rows.append((decision.time, decision.current_replicas, decision.desired_replicas, why))
    return rows
