"""The HorizontalPodAutoscaler controller (autoscaling/v2), ported from Kubernetes for simulation.

Each function mirrors its counterpart in ``pkg/controller/podautoscaler`` (``horizontal.go``,
``replica_calculator.go``, ``metrics/utilization.go``) and the API defaults in
``pkg/apis/autoscaling/v2/defaults.go``; the Go name is given in each docstring. Quantities are
kept in milli-units and divided with Go's integer semantics, so the rounding matches the
controller's. Times are seconds on the simulation clock. One controller instance holds the
history (recommendations, scale events) of one HPA, as the Go maps do per HPA key.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# kube-controller-manager defaults.
SYNC_PERIOD_SECONDS = 15  # --horizontal-pod-autoscaler-sync-period
TOLERANCE = 0.1  # --horizontal-pod-autoscaler-tolerance
DOWNSCALE_STABILIZATION_SECONDS = 300  # --horizontal-pod-autoscaler-downscale-stabilization
CPU_INITIALIZATION_PERIOD_SECONDS = 300  # --horizontal-pod-autoscaler-cpu-initialization-period
INITIAL_READINESS_DELAY_SECONDS = 30  # --horizontal-pod-autoscaler-initial-readiness-delay
# Legacy (no ``behavior``) scale-up limit: max(2 x current, 4).
SCALE_UP_LIMIT_FACTOR = 2.0
SCALE_UP_LIMIT_MINIMUM = 4.0

MAX_INT32 = 2**31 - 1
MIN_INT32 = -(2**31)

SELECT_POLICIES = ("Max", "Min", "Disabled")
POLICY_TYPES = ("Pods", "Percent")


class HpaError(Exception):
    """A metric could not be computed (the controller's ``err`` results)."""


# --- Spec ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScalingPolicy:
    type: str  # "Pods" or "Percent"
    value: int
    period_seconds: int


@dataclass(frozen=True)
class ScalingRules:
    stabilization_window_seconds: int | None
    select_policy: str
    policies: tuple[ScalingPolicy, ...]


# defaults.go: scale up by max(4 pods, 100 %) per 15 s with no stabilisation; scale down by
# 100 % per 15 s with the controller's downscale stabilisation (left unset here).
DEFAULT_SCALE_UP_RULES = ScalingRules(
    0, "Max", (ScalingPolicy("Pods", 4, 15), ScalingPolicy("Percent", 100, 15))
)
DEFAULT_SCALE_DOWN_RULES = ScalingRules(None, "Max", (ScalingPolicy("Percent", 100, 15),))


@dataclass(frozen=True)
class Behavior:
    scale_up: ScalingRules
    scale_down: ScalingRules


@dataclass(frozen=True)
class MetricSpec:
    """One entry of ``spec.metrics``: a Resource or Pods metric and its target."""

    type: str  # "Resource" or "Pods"
    name: str  # "cpu", "memory", or the custom metric's name
    target_type: str  # "Utilization" or "AverageValue"
    target: int  # a percentage for Utilization, milli-units for AverageValue

    @property
    def label(self) -> str:
        return self.name


@dataclass(frozen=True)
class HpaSpec:
    name: str
    min_replicas: int
    max_replicas: int
    metrics: tuple[MetricSpec, ...]
    behavior: Behavior | None

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> HpaSpec:
        """Read an ``autoscaling/v2`` HorizontalPodAutoscaler object, applying the API defaults."""
        if (
            manifest.get("apiVersion") != "autoscaling/v2"
            or manifest.get("kind") != "HorizontalPodAutoscaler"
        ):
            raise ValueError("expected an autoscaling/v2 HorizontalPodAutoscaler")
        spec = manifest["spec"]
        metrics = tuple(_metric_from_manifest(item) for item in spec.get("metrics") or [])
        if not metrics:  # the API defaults to CPU at 80 %
            metrics = (MetricSpec("Resource", "cpu", "Utilization", 80),)
        behavior = None
        if spec.get("behavior") is not None:
            raw = spec["behavior"]
            behavior = Behavior(
                scale_up=merge_scaling_rules(raw.get("scaleUp"), DEFAULT_SCALE_UP_RULES),
                scale_down=merge_scaling_rules(raw.get("scaleDown"), DEFAULT_SCALE_DOWN_RULES),
            )
        return cls(
            name=manifest["metadata"]["name"],
            min_replicas=int(spec.get("minReplicas", 1)),
            max_replicas=int(spec["maxReplicas"]),
            metrics=metrics,
            behavior=behavior,
        )

    def with_bounds(self, min_replicas: int, max_replicas: int) -> HpaSpec:
        return dataclasses.replace(self, min_replicas=min_replicas, max_replicas=max_replicas)


def merge_scaling_rules(given: Mapping[str, Any] | None, default: ScalingRules) -> ScalingRules:
    """``copyHPAScalingRules``: every field that is set replaces the default's."""
    if given is None:
        return default
    policies = default.policies
    if given.get("policies") is not None:
        policies = tuple(
            ScalingPolicy(str(p["type"]), int(p["value"]), int(p["periodSeconds"])) for p in given["policies"]
        )
    window = default.stabilization_window_seconds
    if given.get("stabilizationWindowSeconds") is not None:
        window = int(given["stabilizationWindowSeconds"])
    select = str(given["selectPolicy"]) if given.get("selectPolicy") is not None else default.select_policy
    return ScalingRules(window, select, policies)


def _metric_from_manifest(item: Mapping[str, Any]) -> MetricSpec:
    kind = item["type"]
    if kind == "Resource":
        source = item["resource"]
        name = source["name"]
    elif kind == "Pods":
        source = item["pods"]
        name = source["metric"]["name"]
    else:
        raise ValueError(f"metric type {kind!r} is not simulated")
    target = source["target"]
    if target["type"] == "Utilization":
        return MetricSpec(kind, name, "Utilization", int(target["averageUtilization"]))
    if target["type"] == "AverageValue":
        return MetricSpec(kind, name, "AverageValue", parse_quantity_milli(target["averageValue"]))
    raise ValueError(f"target type {target['type']!r} is not simulated")


_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([a-zA-Z]*)$")
_SUFFIX = {
    "": 1,
    "m": 10**-3,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def parse_quantity_milli(value: str | int | float) -> int:
    """A Kubernetes quantity ("1000", "1.5", "500m", "1Gi") as milli-units (``MilliValue``)."""
    match = _QUANTITY.match(str(value).strip())
    if not match or match.group(2) not in _SUFFIX:
        raise ValueError(f"not a quantity: {value!r}")
    number, suffix = match.groups()
    # MilliValue rounds up (ceil) when the quantity is finer than a milli-unit.
    return math.ceil(round(float(number) * _SUFFIX[suffix] * 1000, 6))


# --- What the controller observes ------------------------------------------------------------------


@dataclass(frozen=True)
class MetricSample:
    value: int  # milli-units
    timestamp: float
    window: float = 60.0


@dataclass
class PodSample:
    """A pod as the controller's pod lister and metrics clients see it."""

    name: str
    phase: str = "Running"  # Pending, Running, Succeeded, Failed
    ready: bool | None = True  # the PodReady condition; None when the pod has none
    start_time: float | None = 0.0
    ready_transition_time: float | None = None  # defaults to start_time
    deleting: bool = False
    requests: dict[str, int] = field(default_factory=dict)  # resource -> milli-units
    metrics: dict[str, MetricSample] = field(default_factory=dict)  # metric name -> sample


# --- replica_calculator.go ---------------------------------------------------------------------


@dataclass(frozen=True)
class Tolerances:
    scale_down: float = TOLERANCE
    scale_up: float = TOLERANCE

    def is_within(self, usage_ratio: float) -> bool:
        return (1.0 - self.scale_down) <= usage_ratio <= (1.0 + self.scale_up)


def group_pods(
    pods: Sequence[PodSample],
    metric: str,
    resource: str | None,
    now: float,
    cpu_initialization_period: float,
    delay_of_initial_readiness: float,
) -> tuple[int, set[str], set[str], set[str]]:
    """``groupPods``: (ready count, unready, missing, ignored)."""
    ready_count = 0
    unready: set[str] = set()
    missing: set[str] = set()
    ignored: set[str] = set()
    for pod in pods:
        if pod.deleting or pod.phase in ("Failed", "Succeeded"):
            ignored.add(pod.name)
            continue
        if pod.phase == "Pending":
            unready.add(pod.name)
            continue
        sample = pod.metrics.get(metric)
        if sample is None:
            missing.add(pod.name)
            continue
        if resource == "cpu":
            transition = (
                pod.ready_transition_time if pod.ready_transition_time is not None else pod.start_time
            )
            if pod.ready is None or pod.start_time is None or transition is None:
                is_unready = True
            elif pod.start_time + cpu_initialization_period > now:
                # Still initialising: ignore the sample if unready or taken before a full window
                # had passed since the last readiness change.
                is_unready = pod.ready is False or sample.timestamp < transition + sample.window
            else:
                # Ignore it if the pod is unready and has never been ready.
                is_unready = pod.ready is False and pod.start_time + delay_of_initial_readiness > transition
            if is_unready:
                unready.add(pod.name)
                continue
        ready_count += 1
    return ready_count, unready, missing, ignored


def resource_utilization_ratio(
    metrics: Mapping[str, int], requests: Mapping[str, int], target_utilization: int
) -> tuple[float, int, int]:
    """``GetResourceUtilizationRatio``: (ratio, utilization %, raw average)."""
    metrics_total = requests_total = entries = 0
    for pod, value in metrics.items():
        if pod not in requests:
            continue
        metrics_total += value
        requests_total += requests[pod]
        entries += 1
    if requests_total == 0:
        raise HpaError("no metrics returned matched known pods")
    utilization = (metrics_total * 100) // requests_total
    return utilization / target_utilization, utilization, metrics_total // entries


def metric_usage_ratio(metrics: Mapping[str, int], target_usage: int) -> tuple[float, int]:
    """``GetMetricUsageRatio``: (ratio, average usage)."""
    usage = sum(metrics.values()) // len(metrics)
    return usage / target_usage, usage


class ReplicaCalculator:
    def __init__(
        self,
        *,
        cpu_initialization_period: float = CPU_INITIALIZATION_PERIOD_SECONDS,
        delay_of_initial_readiness: float = INITIAL_READINESS_DELAY_SECONDS,
    ) -> None:
        self.cpu_initialization_period = cpu_initialization_period
        self.delay_of_initial_readiness = delay_of_initial_readiness

    def _grouped(
        self, pods: Sequence[PodSample], metric: str, resource: str | None, now: float
    ) -> tuple[int, set[str], set[str], dict[str, int]]:
        if not pods:
            raise HpaError("no pods returned by selector while calculating replica count")
        ready, unready, missing, ignored = group_pods(
            pods, metric, resource, now, self.cpu_initialization_period, self.delay_of_initial_readiness
        )
        values = {
            pod.name: pod.metrics[metric].value
            for pod in pods
            if metric in pod.metrics and pod.name not in unready and pod.name not in ignored
        }
        if not values:
            raise HpaError("did not receive metrics for targeted pods (pods might be unready)")
        return ready, unready, missing, values

    def get_resource_replicas(
        self,
        current_replicas: int,
        target_utilization: int,
        resource: str,
        pods: Sequence[PodSample],
        now: float,
        tolerances: Tolerances = Tolerances(),
    ) -> tuple[int, int, int]:
        """``GetResourceReplicas``: (replicas, utilization %, raw average)."""
        ready, unready, missing, values = self._grouped(pods, resource, resource, now)
        requests = {}
        for pod in pods:
            if resource not in pod.requests:
                raise HpaError(f"missing request for {resource} in pod {pod.name}")
            requests[pod.name] = pod.requests[resource]
        usage_ratio, utilization, raw = resource_utilization_ratio(values, requests, target_utilization)
        scale_up_with_unready = bool(unready) and usage_ratio > 1.0
        if not scale_up_with_unready and not missing:
            if tolerances.is_within(usage_ratio):
                return current_replicas, utilization, raw
            return math.ceil(usage_ratio * ready), utilization, raw
        if missing:
            if usage_ratio < 1.0:
                # On a scale-down, a pod without metrics counts as using its whole request
                # (or the target, when the target is above 100 %).
                fallback = max(100, target_utilization)
                for name in missing:
                    values[name] = requests[name] * fallback // 100
            elif usage_ratio > 1.0:
                for name in missing:
                    values[name] = 0
        if scale_up_with_unready:
            for name in unready:
                values[name] = 0
        new_ratio, _, _ = resource_utilization_ratio(values, requests, target_utilization)
        if (
            tolerances.is_within(new_ratio)
            or (usage_ratio < 1.0 < new_ratio)
            or (usage_ratio > 1.0 > new_ratio)
        ):
            return current_replicas, utilization, raw
        new_replicas = math.ceil(new_ratio * len(values))
        if (new_ratio < 1.0 and new_replicas > current_replicas) or (
            new_ratio > 1.0 and new_replicas < current_replicas
        ):
            return current_replicas, utilization, raw
        return new_replicas, utilization, raw

    def calc_plain_metric_replicas(
        self,
        current_replicas: int,
        target_usage: int,
        metric: str,
        pods: Sequence[PodSample],
        now: float,
        tolerances: Tolerances = Tolerances(),
        resource: str | None = None,
    ) -> tuple[int, int]:
        """``calcPlainMetricReplicas`` (Pods metrics, raw resource values): (replicas, usage)."""
        ready, unready, missing, values = self._grouped(pods, metric, resource, now)
        usage_ratio, usage = metric_usage_ratio(values, target_usage)
        scale_up_with_unready = bool(unready) and usage_ratio > 1.0
        if not scale_up_with_unready and not missing:
            if tolerances.is_within(usage_ratio):
                return current_replicas, usage
            return math.ceil(usage_ratio * ready), usage
        if missing:
            if usage_ratio < 1.0:
                # On a scale-down, a pod without metrics counts as exactly on target.
                for name in missing:
                    values[name] = target_usage
            elif usage_ratio > 1.0:
                for name in missing:
                    values[name] = 0
        if scale_up_with_unready:
            for name in unready:
                values[name] = 0
        new_ratio, _ = metric_usage_ratio(values, target_usage)
        if (
            tolerances.is_within(new_ratio)
            or (usage_ratio < 1.0 < new_ratio)
            or (usage_ratio > 1.0 > new_ratio)
        ):
            return current_replicas, usage
        new_replicas = math.ceil(new_ratio * len(values))
        if (new_ratio < 1.0 and new_replicas > current_replicas) or (
            new_ratio > 1.0 and new_replicas < current_replicas
        ):
            return current_replicas, usage
        return new_replicas, usage


# --- horizontal.go -----------------------------------------------------------------------------


@dataclass
class TimestampedRecommendation:
    recommendation: int
    timestamp: float


@dataclass
class ScaleEvent:
    replica_change: int  # always positive; the direction is the list it is stored in
    timestamp: float
    outdated: bool = False


@dataclass
class MetricProposal:
    metric: str
    replicas: int | None  # None when the metric could not be computed
    current: int | None  # utilization % or average value (milli-units)
    error: str = ""


@dataclass
class Decision:
    """One reconcile: what the metrics asked for and what the controller set."""

    time: float
    current_replicas: int
    desired_replicas: int
    metric_desired_replicas: int | None
    reason: str
    limited_by: str
    proposals: list[MetricProposal]


def get_replicas_change_per_period(period_seconds: int, events: Iterable[ScaleEvent], now: float) -> int:
    """``getReplicasChangePerPeriod``: changes strictly after ``now - period``."""
    cutoff = now - period_seconds
    return sum(event.replica_change for event in events if event.timestamp > cutoff)


def get_longest_policy_period(rules: ScalingRules) -> int:
    return max((policy.period_seconds for policy in rules.policies), default=0)


def mark_scale_events_outdated(events: list[ScaleEvent], longest_period: int, now: float) -> None:
    cutoff = now - longest_period
    for event in events:
        if event.timestamp < cutoff:
            event.outdated = True


def calculate_scale_up_limit_with_scaling_rules(
    current_replicas: int,
    scale_up_events: Sequence[ScaleEvent],
    scale_down_events: Sequence[ScaleEvent],
    rules: ScalingRules,
    now: float,
) -> int:
    """``calculateScaleUpLimitWithScalingRules``: the most replicas the policies allow now."""
    if rules.select_policy == "Disabled":
        return current_replicas
    if rules.select_policy == "Min":
        result, select = MAX_INT32, min
    else:
        result, select = MIN_INT32, max
    for policy in rules.policies:
        added = get_replicas_change_per_period(policy.period_seconds, scale_up_events, now)
        deleted = get_replicas_change_per_period(policy.period_seconds, scale_down_events, now)
        period_start = current_replicas - added + deleted
        if policy.type == "Pods":
            proposed = period_start + policy.value
        else:
            # Rounded up, or a small percentage of a small count would never add a pod.
            proposed = math.ceil(period_start * (1 + policy.value / 100))
        result = select(result, proposed)
    return result


def calculate_scale_down_limit_with_behaviors(
    current_replicas: int,
    scale_up_events: Sequence[ScaleEvent],
    scale_down_events: Sequence[ScaleEvent],
    rules: ScalingRules,
    now: float,
) -> int:
    """``calculateScaleDownLimitWithBehaviors``: the fewest replicas the policies allow now."""
    if rules.select_policy == "Disabled":
        return current_replicas
    if rules.select_policy == "Min":
        result, select = MIN_INT32, max
    else:
        result, select = MAX_INT32, min
    for policy in rules.policies:
        added = get_replicas_change_per_period(policy.period_seconds, scale_up_events, now)
        deleted = get_replicas_change_per_period(policy.period_seconds, scale_down_events, now)
        period_start = current_replicas - added + deleted
        if policy.type == "Pods":
            proposed = period_start - policy.value
        else:
            proposed = int(period_start * (1 - policy.value / 100))  # Go's int32(): truncation
        result = select(result, proposed)
    return result


def convert_desired_replicas_with_rules(
    current_replicas: int, desired_replicas: int, min_replicas: int, max_replicas: int
) -> tuple[int, str]:
    """``convertDesiredReplicasWithRules`` (an HPA without ``behavior``)."""
    scale_up_limit = int(max(SCALE_UP_LIMIT_FACTOR * current_replicas, SCALE_UP_LIMIT_MINIMUM))
    if max_replicas > scale_up_limit:
        maximum, condition = scale_up_limit, "ScaleUpLimit"
    else:
        maximum, condition = max_replicas, "TooManyReplicas"
    if desired_replicas < min_replicas:
        return min_replicas, "TooFewReplicas"
    if desired_replicas > maximum:
        return maximum, condition
    return desired_replicas, "DesiredWithinRange"


class HorizontalController:
    """The controller's per-HPA state and its reconcile step."""

    def __init__(
        self,
        *,
        tolerance: float = TOLERANCE,
        downscale_stabilisation_seconds: int = DOWNSCALE_STABILIZATION_SECONDS,
        cpu_initialization_period: float = CPU_INITIALIZATION_PERIOD_SECONDS,
        delay_of_initial_readiness: float = INITIAL_READINESS_DELAY_SECONDS,
    ) -> None:
        self.tolerances = Tolerances(tolerance, tolerance)
        self.downscale_stabilisation_seconds = downscale_stabilisation_seconds
        self.calculator = ReplicaCalculator(
            cpu_initialization_period=cpu_initialization_period,
            delay_of_initial_readiness=delay_of_initial_readiness,
        )
        self.recommendations: list[TimestampedRecommendation] | None = None
        self.scale_up_events: list[ScaleEvent] = []
        self.scale_down_events: list[ScaleEvent] = []

    # -- reconcile -------------------------------------------------------------------------------

    def reconcile(
        self, spec: HpaSpec, current_replicas: int, pods: Sequence[PodSample], now: float
    ) -> Decision:
        """``reconcileAutoscaler``: the replica count to set now (equal to current if none)."""
        if self.recommendations is None:  # recordInitialRecommendation
            self.recommendations = [TimestampedRecommendation(current_replicas, now)]
        proposals: list[MetricProposal] = []
        metric_desired: int | None = None
        limited_by = ""
        if current_replicas == 0:
            return Decision(now, 0, 0, None, "scaling is disabled since the replica count is zero", "", [])
        if current_replicas > spec.max_replicas:
            # The bounds are enforced at once, without stabilisation or rate limits.
            desired, reason = spec.max_replicas, "Current number of replicas above Spec.MaxReplicas"
        elif current_replicas < spec.min_replicas:
            desired, reason = spec.min_replicas, "Current number of replicas below Spec.MinReplicas"
        else:
            metric_desired, proposals = self.compute_replicas_for_metrics(spec, current_replicas, pods, now)
            if metric_desired is None:
                return Decision(
                    now, current_replicas, current_replicas, None, "invalid metrics", "", proposals
                )
            desired = metric_desired
            reason = ""
            if desired > current_replicas:
                best = max((p for p in proposals if p.replicas is not None), key=lambda p: p.replicas or 0)
                reason = f"{best.metric} above target"
            elif desired < current_replicas:
                reason = "All metrics below target"
            if spec.behavior is None:
                desired, limited_by = self.normalize_desired_replicas(spec, current_replicas, desired, now)
            else:
                desired, limited_by = self.normalize_desired_replicas_with_behaviors(
                    spec, current_replicas, desired, now
                )
        if desired != current_replicas:
            self.store_scale_event(spec.behavior, current_replicas, desired, now)
        return Decision(now, current_replicas, desired, metric_desired, reason, limited_by, proposals)

    def compute_replicas_for_metrics(
        self, spec: HpaSpec, current_replicas: int, pods: Sequence[PodSample], now: float
    ) -> tuple[int | None, list[MetricProposal]]:
        """``computeReplicasForMetrics``: the largest proposal across metrics.

        When every metric fails, or some fail and the rest would scale down, nothing changes.
        """
        proposals = []
        replicas = 0
        invalid = 0
        for metric in spec.metrics:
            try:
                proposal, current = self._replicas_for_metric(metric, current_replicas, pods, now)
            except HpaError as exc:
                invalid += 1
                proposals.append(MetricProposal(metric.label, None, None, str(exc)))
                continue
            proposals.append(MetricProposal(metric.label, proposal, current))
            if replicas == 0 or proposal > replicas:
                replicas = proposal
        if invalid >= len(spec.metrics) or (invalid > 0 and replicas < current_replicas):
            return None, proposals
        return replicas, proposals

    def _replicas_for_metric(
        self, metric: MetricSpec, current_replicas: int, pods: Sequence[PodSample], now: float
    ) -> tuple[int, int]:
        if metric.type == "Resource" and metric.target_type == "Utilization":
            replicas, utilization, _ = self.calculator.get_resource_replicas(
                current_replicas, metric.target, metric.name, pods, now, self.tolerances
            )
            return replicas, utilization
        resource = metric.name if metric.type == "Resource" else None
        return self.calculator.calc_plain_metric_replicas(
            current_replicas, metric.target, metric.name, pods, now, self.tolerances, resource
        )

    # -- normalisation without behavior ----------------------------------------------------------

    def stabilize_recommendation(self, prenormalized: int, now: float) -> int:
        """``stabilizeRecommendation``: the highest recommendation of the downscale window."""
        history = self._history()
        best = prenormalized
        old_index: int | None = None
        cutoff = now - self.downscale_stabilisation_seconds
        for index, rec in enumerate(history):
            if rec.timestamp < cutoff:
                old_index = index
            elif rec.recommendation > best:
                best = rec.recommendation
        self._record(prenormalized, now, old_index)
        return best

    def normalize_desired_replicas(
        self, spec: HpaSpec, current_replicas: int, prenormalized: int, now: float
    ) -> tuple[int, str]:
        stabilized = self.stabilize_recommendation(prenormalized, now)
        return convert_desired_replicas_with_rules(
            current_replicas, stabilized, spec.min_replicas, spec.max_replicas
        )

    # -- normalisation with behavior -------------------------------------------------------------

    def _rules(self, behavior: Behavior) -> tuple[ScalingRules, ScalingRules]:
        """``maybeInitScaleDownStabilizationWindow``: an unset downscale window is the flag's."""
        down = behavior.scale_down
        if down.stabilization_window_seconds is None:
            down = dataclasses.replace(
                down, stabilization_window_seconds=self.downscale_stabilisation_seconds
            )
        return behavior.scale_up, down

    def stabilize_recommendation_with_behaviors(
        self, current_replicas: int, desired_replicas: int, up: ScalingRules, down: ScalingRules, now: float
    ) -> int:
        """``stabilizeRecommendationWithBehaviors``.

        Scaling up goes no higher than the lowest recommendation of the scale-up window; scaling
        down no lower than the highest of the scale-down window.
        """
        history = self._history()
        up_cutoff = now - (up.stabilization_window_seconds or 0)
        down_cutoff = now - (down.stabilization_window_seconds or 0)
        up_recommendation = desired_replicas
        down_recommendation = desired_replicas
        old_index: int | None = None
        for index, rec in enumerate(history):
            if rec.timestamp > up_cutoff:
                up_recommendation = min(rec.recommendation, up_recommendation)
            if rec.timestamp > down_cutoff:
                down_recommendation = max(rec.recommendation, down_recommendation)
            if rec.timestamp < up_cutoff and rec.timestamp < down_cutoff:
                old_index = index
        recommendation = current_replicas
        if recommendation < up_recommendation:
            recommendation = up_recommendation
        if recommendation > down_recommendation:
            recommendation = down_recommendation
        self._record(desired_replicas, now, old_index)
        return recommendation

    def convert_desired_replicas_with_behavior_rate(
        self,
        current_replicas: int,
        desired_replicas: int,
        min_replicas: int,
        max_replicas: int,
        up: ScalingRules,
        down: ScalingRules,
        now: float,
    ) -> tuple[int, str]:
        """``convertDesiredReplicasWithBehaviorRate``: apply the rate-limit policies and bounds."""
        if desired_replicas > current_replicas:
            limit = calculate_scale_up_limit_with_scaling_rules(
                current_replicas, self.scale_up_events, self.scale_down_events, up, now
            )
            limit = max(limit, current_replicas)  # never scale down while scaling up
            if max_replicas > limit:
                maximum, reason = limit, "ScaleUpLimit"
            else:
                maximum, reason = max_replicas, "TooManyReplicas"
            if desired_replicas > maximum:
                return maximum, reason
        elif desired_replicas < current_replicas:
            limit = calculate_scale_down_limit_with_behaviors(
                current_replicas, self.scale_up_events, self.scale_down_events, down, now
            )
            limit = min(limit, current_replicas)  # never scale up while scaling down
            if min_replicas < limit:
                minimum, reason = limit, "ScaleDownLimit"
            else:
                minimum, reason = min_replicas, "TooFewReplicas"
            if desired_replicas < minimum:
                return minimum, reason
        return desired_replicas, "DesiredWithinRange"

    def normalize_desired_replicas_with_behaviors(
        self, spec: HpaSpec, current_replicas: int, prenormalized: int, now: float
    ) -> tuple[int, str]:
        assert spec.behavior is not None
        up, down = self._rules(spec.behavior)
        stabilized = self.stabilize_recommendation_with_behaviors(
            current_replicas, prenormalized, up, down, now
        )
        desired, reason = self.convert_desired_replicas_with_behavior_rate(
            current_replicas, stabilized, spec.min_replicas, spec.max_replicas, up, down, now
        )
        if stabilized != prenormalized and desired == stabilized:
            reason = "ScaleUpStabilized" if prenormalized >= current_replicas else "ScaleDownStabilized"
        return desired, reason

    # -- history ---------------------------------------------------------------------------------

    def store_scale_event(self, behavior: Behavior | None, previous: int, new: int, now: float) -> None:
        """``storeScaleEvent``: add the change, reusing the slot of an outdated event."""
        if behavior is None:
            return
        if new > previous:
            events, rules, change = self.scale_up_events, behavior.scale_up, new - previous
        else:
            events, rules, change = self.scale_down_events, behavior.scale_down, previous - new
        mark_scale_events_outdated(events, get_longest_policy_period(rules), now)
        old_index = None
        for index, event in enumerate(events):
            if event.outdated:
                old_index = index
        event = ScaleEvent(change, now)
        if old_index is None:
            events.append(event)
        else:
            events[old_index] = event

    def _history(self) -> list[TimestampedRecommendation]:
        if self.recommendations is None:
            self.recommendations = []
        return self.recommendations

    def _record(self, recommendation: int, now: float, old_index: int | None) -> None:
        history = self._history()
        entry = TimestampedRecommendation(recommendation, now)
        if old_index is None:
            history.append(entry)
        else:
            history[old_index] = entry
