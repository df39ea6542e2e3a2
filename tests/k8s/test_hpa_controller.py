"""The simulator's HPA controller against the Kubernetes controller's own test cases.

Each table is ported from ``pkg/controller/podautoscaler`` in Kubernetes: ``horizontal_test.go``
(TestScalingWithRules, TestNormalizeDesiredReplicasWithBehavior, TestNormalizeDesiredReplicas,
TestStoreScaleEvents, TestScaleUpOneMetricEmpty, TestNoScaleDownOneMetricEmpty) and
``replica_calculator_test.go`` (TestReplicaCalcResourceScale, TestReplicaCalcPodMetric): same
inputs, same expected replicas, utilisation and conditions. Times are relative to NOW.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench.autoscaling.hpa import (
    DEFAULT_SCALE_DOWN_RULES,
    DEFAULT_SCALE_UP_RULES,
    Behavior,
    HorizontalController,
    HpaSpec,
    MetricSample,
    MetricSpec,
    PodSample,
    ReplicaCalculator,
    ScaleEvent,
    ScalingRules,
    TimestampedRecommendation,
    Tolerances,
    get_replicas_change_per_period,
    merge_scaling_rules,
    parse_quantity_milli,
)

NOW = 100_000.0
MINUTE = 60.0


def generate_scaling_rules(
    pods: int, pods_period: int, percent: int, percent_period: int, window: int
) -> ScalingRules:
    """``generateScalingRules``: select Max, a Pods policy first, then a Percent policy."""
    policies: list[dict[str, Any]] = []
    if pods:
        policies.append({"type": "Pods", "value": pods, "periodSeconds": pods_period})
    if percent:
        policies.append({"type": "Percent", "value": percent, "periodSeconds": percent_period})
    return merge_scaling_rules(
        {"stabilizationWindowSeconds": window, "selectPolicy": "Max", "policies": policies},
        DEFAULT_SCALE_UP_RULES,
    )


def events_uniform(raw: list[int], period_seconds: int) -> list[ScaleEvent]:
    """``generateEventsUniformDistribution``: events at the centres of equal slices of the period."""
    segment = period_seconds / len(raw)
    events = []
    for index, change in enumerate(raw):
        boundary = int(period_seconds - segment * (index + 1) + segment / 2)  # time.Duration truncates
        events.append(ScaleEvent(change, NOW - boundary))
    return events


# name, scale-up events, scale-down events, min, max, up rules, down rules, current, desired,
# expected replicas, expected condition
SCALING_WITH_RULES = [
    (
        "prenormalized desired replicas within range",
        None,
        None,
        3,
        8,
        None,
        None,
        5,
        7,
        7,
        "DesiredWithinRange",
    ),
    ("prenormalized desired replicas < minReplicas", None, None, 2, 8, None, None, 3, 1, 2, "TooFewReplicas"),
    ("within range when minReplicas is 0", None, None, 0, 10, None, None, 1, 0, 0, "DesiredWithinRange"),
    (
        "maxReplicas is the limit because maxReplicas < scaleUpLimit",
        None,
        None,
        1,
        10,
        None,
        None,
        20,
        1000,
        10,
        "TooManyReplicas",
    ),
    (
        "desired replica count is more than the maximum replica count",
        None,
        None,
        100,
        150,
        None,
        None,
        100,
        1000,
        150,
        "TooManyReplicas",
    ),
    (
        "scaleUpLimit < maxReplicas with user policies",
        None,
        None,
        1,
        2000,
        (0, 0, 1, 60, 0),
        None,
        3,
        1000,
        4,
        "ScaleUpLimit",
    ),
    ("scaleUp with default behavior", None, None, 1, 1000, None, None, 10, 50, 20, "ScaleUpLimit"),
    (
        "scaleUp with pods policy larger than percent policy",
        None,
        None,
        1,
        1000,
        (100, 60, 100, 60, 0),
        None,
        10,
        500,
        110,
        "ScaleUpLimit",
    ),
    (
        "scaleUp with percent policy larger than pods policy",
        None,
        None,
        1,
        1000,
        (2, 60, 100, 60, 0),
        None,
        10,
        500,
        20,
        "ScaleUpLimit",
    ),
    (
        "scaleUp with spec MaxReplicas limitation with large pod policy",
        None,
        None,
        1,
        1000,
        (100, 60, 0, 0, 0),
        None,
        10,
        50,
        50,
        "DesiredWithinRange",
    ),
    (
        "scaleUp with spec MaxReplicas limitation with large percent policy",
        None,
        None,
        1,
        1000,
        (10000, 60, 0, 0, 0),
        None,
        10,
        50,
        50,
        "DesiredWithinRange",
    ),
    (
        "scaleUp with pod policy limitation",
        None,
        None,
        1,
        1000,
        (30, 60, 0, 0, 0),
        None,
        10,
        50,
        40,
        "ScaleUpLimit",
    ),
    (
        "scaleUp with percent policy limitation",
        None,
        None,
        1,
        1000,
        (0, 0, 200, 60, 0),
        None,
        10,
        50,
        30,
        "ScaleUpLimit",
    ),
    (
        "scaleDown with percent policy larger than pod policy",
        None,
        None,
        1,
        1000,
        None,
        (20, 60, 1, 60, 300),
        100,
        2,
        80,
        "ScaleDownLimit",
    ),
    (
        "scaleDown with pod policy larger than percent policy",
        None,
        None,
        1,
        1000,
        None,
        (2, 60, 1, 60, 300),
        100,
        2,
        98,
        "ScaleDownLimit",
    ),
    (
        "scaleDown with spec MinReplicas limitation with large pod policy",
        None,
        None,
        1,
        1000,
        None,
        (100, 60, 0, 0, 300),
        10,
        0,
        1,
        "TooFewReplicas",
    ),
    (
        "scaleDown with spec MinReplicas limitation with large percent policy",
        None,
        None,
        5,
        1000,
        None,
        (0, 0, 100, 60, 300),
        10,
        2,
        5,
        "TooFewReplicas",
    ),
    (
        "scaleDown with pod policy limitation",
        None,
        None,
        1,
        1000,
        None,
        (5, 60, 0, 0, 300),
        10,
        2,
        5,
        "ScaleDownLimit",
    ),
    (
        "scaleDown with percent policy limitation",
        None,
        None,
        1,
        1000,
        None,
        (0, 0, 50, 60, 300),
        10,
        5,
        5,
        "DesiredWithinRange",
    ),
    (
        "scaleUp MaxReplicas limitation with large pod policy and events",
        ([1, 5, 9], 120),
        None,
        1,
        200,
        (300, 60, 0, 0, 0),
        None,
        100,
        500,
        200,
        "TooManyReplicas",
    ),
    (
        "scaleUp MaxReplicas limitation with large percent policy and events",
        ([1, 5, 9], 120),
        None,
        1,
        200,
        (0, 0, 10000, 60, 0),
        None,
        100,
        500,
        200,
        "TooManyReplicas",
    ),
    (
        "scaleUp currentReplicas limitation with a lot of recent scale up events",
        ([1, 5, 9], 120),
        None,
        1,
        1000,
        (5, 120, 0, 0, 0),
        None,
        100,
        500,
        100,
        "ScaleUpLimit",
    ),
    (
        "scaleUp with pod policy and previous scale up events",
        ([1, 5, 9], 120),
        None,
        1,
        1000,
        (150, 120, 0, 0, 0),
        None,
        100,
        500,
        235,
        "ScaleUpLimit",
    ),
    (
        "scaleUp with percent policy and previous scale up events",
        ([1, 5, 9], 120),
        None,
        1,
        1000,
        (0, 0, 200, 120, 0),
        None,
        100,
        500,
        255,
        "ScaleUpLimit",
    ),
    (
        "scaleUp with percent policy and previous scale up and down events",
        ([4], 120),
        ([2], 120),
        1,
        1000,
        (0, 0, 300, 300, 0),
        None,
        6,
        24,
        16,
        "ScaleUpLimit",
    ),
    (
        "scaleDown with default policy and previous events",
        None,
        ([1, 5, 9], 120),
        1,
        1000,
        None,
        None,
        10,
        5,
        5,
        "DesiredWithinRange",
    ),
    (
        "scaleDown MinReplicas=nil limitation with large pod policy and previous events",
        None,
        ([1, 5, 9], 120),
        1,
        1000,
        None,
        (115, 120, 0, 0, 300),
        100,
        0,
        1,
        "TooFewReplicas",
    ),
    (
        "scaleDown MinReplicas limitation with large pod policy and previous events",
        None,
        ([1, 5, 9], 120),
        5,
        1000,
        None,
        (130, 120, 0, 0, 300),
        100,
        0,
        5,
        "TooFewReplicas",
    ),
    (
        "scaleDown MinReplicas limitation with large percent policy and previous events",
        None,
        ([1, 5, 9], 120),
        5,
        1000,
        None,
        (0, 0, 100, 120, 300),
        100,
        2,
        5,
        "TooFewReplicas",
    ),
    (
        "scaleDown with pod policy limitation and previous events",
        None,
        ([1, 5, 9], 120),
        1,
        1000,
        None,
        (5, 120, 0, 0, 300),
        100,
        2,
        100,
        "ScaleDownLimit",
    ),
    (
        "scaleDown with percent policy limitation and previous events",
        None,
        ([2, 4, 6], 120),
        1,
        1000,
        None,
        (0, 0, 50, 120, 300),
        100,
        0,
        56,
        "ScaleDownLimit",
    ),
    (
        "scaleDown with percent policy and previous scale up and down events",
        ([2], 120),
        ([4], 120),
        1,
        1000,
        None,
        (0, 0, 50, 180, 0),
        10,
        1,
        6,
        "ScaleDownLimit",
    ),
    (
        "scaleDown with previous events preventing further scale down",
        None,
        ([10, 10, 10], 120),
        1,
        1000,
        None,
        (0, 0, 10, 120, 300),
        100,
        0,
        100,
        "ScaleDownLimit",
    ),
    (
        "scaleDown with previous events still allowing more scale down",
        None,
        ([10, 10, 10], 120),
        1,
        1000,
        None,
        (0, 0, 1000, 120, 300),
        10,
        5,
        5,
        "DesiredWithinRange",
    ),
    (
        "check 'outdated' flag for events for one behavior for up",
        ([8, 12, 9, 11], 120),
        None,
        1,
        1000,
        (1000, 60, 0, 0, 0),
        None,
        100,
        200,
        200,
        "DesiredWithinRange",
    ),
    (
        "events not marked 'outdated' for two different policies for up",
        ([8, 12, 9, 11], 120),
        None,
        1,
        1000,
        (1000, 120, 100, 60, 0),
        None,
        100,
        200,
        200,
        "DesiredWithinRange",
    ),
    (
        "events marked 'outdated' for two different policies for up",
        ([8, 12, 9, 11], 120),
        None,
        1,
        1000,
        (1000, 30, 100, 60, 0),
        None,
        100,
        200,
        200,
        "DesiredWithinRange",
    ),
    (
        "check 'outdated' flag for events for one behavior for down",
        None,
        ([8, 12, 9, 11], 120),
        1,
        1000,
        None,
        (1000, 60, 0, 0, 300),
        100,
        5,
        5,
        "DesiredWithinRange",
    ),
    (
        "events not marked 'outdated' for two different policies for down",
        None,
        ([8, 12, 9, 11], 120),
        1,
        1000,
        None,
        (1000, 120, 100, 60, 300),
        100,
        5,
        5,
        "DesiredWithinRange",
    ),
    (
        "events marked 'outdated' for two different policies for down",
        None,
        ([8, 12, 9, 11], 120),
        1,
        1000,
        None,
        (1000, 30, 100, 60, 300),
        100,
        5,
        5,
        "DesiredWithinRange",
    ),
]


@pytest.mark.parametrize(
    ("up_events", "down_events", "low", "high", "up", "down", "current", "desired", "expected", "condition"),
    [case[1:] for case in SCALING_WITH_RULES],
    ids=[case[0] for case in SCALING_WITH_RULES],
)
def test_scaling_with_rules(
    up_events: Any,
    down_events: Any,
    low: int,
    high: int,
    up: Any,
    down: Any,
    current: int,
    desired: int,
    expected: int,
    condition: str,
) -> None:
    controller = HorizontalController()
    controller.scale_up_events = events_uniform(*up_events) if up_events else []
    controller.scale_down_events = events_uniform(*down_events) if down_events else []
    up_rules = generate_scaling_rules(*up) if up else DEFAULT_SCALE_UP_RULES
    down_rules = generate_scaling_rules(*down) if down else DEFAULT_SCALE_DOWN_RULES
    replicas, reason = controller.convert_desired_replicas_with_behavior_rate(
        current, desired, low, high, up_rules, down_rules, NOW
    )
    assert (replicas, reason) == (expected, condition)


# name, recommendations (value, age in minutes), current, desired, expected, expected stored
# recommendations (None: not checked), up window, down window
STABILISATION = [
    ("empty recommendations for scaling down", [], 100, 5, 5, [5], 0, 0),
    ("simple scale down stabilization", [(4, 2), (5, 1)], 100, 3, 5, [4, 5, 3], 0, 180),
    ("simple scale up stabilization", [(4, 2), (5, 1)], 1, 7, 4, [4, 5, 7], 300, 0),
    ("no scale down stabilization", [(1, 2), (2, 1)], 100, 3, 3, [1, 2, 3], 300, 0),
    ("no scale up stabilization", [(4, 2), (5, 1)], 1, 3, 3, [4, 5, 3], 0, 300),
    (
        "no scale down stabilization, reuse recommendation element",
        [(10, 10), (9, 9)],
        100,
        3,
        3,
        [10, 3],
        0,
        0,
    ),
    (
        "no scale up stabilization, reuse recommendation element",
        [(10, 10), (9, 9)],
        1,
        100,
        100,
        [10, 100],
        0,
        0,
    ),
    (
        "scale down stabilization, reuse one of obsolete recommendation element",
        [(10, 10), (4, 1), (5, 2), (9, 9)],
        100,
        3,
        5,
        [10, 4, 5, 3],
        0,
        180,
    ),
    (
        "scale up stabilization, reuse one of obsolete recommendation element",
        [(10, 100), (6, 1), (5, 2), (9, 3)],
        1,
        100,
        5,
        [100, 6, 5, 9],
        300,
        0,
    ),
    ("do not scale up when prenormalized rec goes down", [(2, 100), (3, 3)], 2, 1, 2, None, 300, 300),
    ("do not scale down when prenormalized rec goes up", [(2, 100), (1, 3)], 2, 3, 2, None, 300, 300),
]


@pytest.mark.parametrize(
    ("history", "current", "desired", "expected", "stored", "up_window", "down_window"),
    [case[1:] for case in STABILISATION],
    ids=[case[0] for case in STABILISATION],
)
def test_normalize_desired_replicas_with_behavior(
    history: list[tuple[int, int]],
    current: int,
    desired: int,
    expected: int,
    stored: list[int] | None,
    up_window: int,
    down_window: int,
) -> None:
    controller = HorizontalController()
    controller.recommendations = [
        TimestampedRecommendation(value, NOW - age * MINUTE) for value, age in history
    ]
    up = ScalingRules(up_window, "Max", ())
    down = ScalingRules(down_window, "Max", ())
    assert controller.stabilize_recommendation_with_behaviors(current, desired, up, down, NOW) == expected
    if stored is not None:
        assert [r.recommendation for r in controller.recommendations] == stored


LEGACY_STABILISATION = [
    ("empty log", [], 5, 5, 1),
    ("stabilize", [(4, 2), (5, 1)], 3, 5, 3),
    ("no stabilize", [(1, 2), (2, 1)], 3, 3, 3),
    ("no stabilize - old recommendations", [(10, 10), (9, 9)], 3, 3, 2),
    ("stabilize - old recommendations", [(10, 10), (4, 1), (5, 2), (9, 9)], 3, 5, 4),
]


@pytest.mark.parametrize(
    ("history", "desired", "expected", "log_length"),
    [case[1:] for case in LEGACY_STABILISATION],
    ids=[case[0] for case in LEGACY_STABILISATION],
)
def test_normalize_desired_replicas_without_behavior(
    history: list[tuple[int, int]], desired: int, expected: int, log_length: int
) -> None:
    controller = HorizontalController(downscale_stabilisation_seconds=300)
    controller.recommendations = [
        TimestampedRecommendation(value, NOW - age * MINUTE) for value, age in history
    ]
    assert controller.stabilize_recommendation(desired, NOW) == expected
    assert len(controller.recommendations) == log_length


# name, replica change, previous events (change, age s), rules, expected change in the last
# 60 s, expected events after storing (change, outdated)
STORE_EVENTS = [
    ("empty entries with default behavior", 5, [], None, 0, []),
    ("empty entries with two-policy-behavior", 5, [], (10, 60, 100, 60, 0), 0, [(5, False)]),
    ("one outdated entry to be kept untouched without behavior", 5, [(7, 61)], None, 0, [(7, False)]),
    ("one outdated entry to be replaced with behavior", 5, [(7, 61)], (10, 60, 100, 60, 0), 0, [(5, False)]),
    (
        "one actual entry to be not touched with behavior",
        5,
        [(7, 58)],
        (10, 60, 100, 60, 0),
        7,
        [(7, False), (5, False)],
    ),
    (
        "two entries, one of them to be replaced",
        5,
        [(7, 61), (6, 59)],
        (10, 60, 0, 0, 0),
        6,
        [(5, False), (6, False)],
    ),
    (
        "replace one entry, use policies with different periods",
        5,
        [(8, 29), (6, 59), (7, 61), (9, 61)],
        (10, 60, 100, 30, 0),
        14,
        [(8, False), (6, False), (7, True), (5, False)],
    ),
    (
        "two entries, both actual",
        5,
        [(7, 58), (6, 59)],
        (10, 120, 100, 30, 0),
        13,
        [(7, False), (6, False), (5, False)],
    ),
]


@pytest.mark.parametrize(
    ("change", "previous", "rules", "expected_change", "expected_events"),
    [case[1:] for case in STORE_EVENTS],
    ids=[case[0] for case in STORE_EVENTS],
)
@pytest.mark.parametrize("direction", ["up", "down"])
def test_store_scale_events(
    direction: str,
    change: int,
    previous: list[tuple[int, int]],
    rules: Any,
    expected_change: int,
    expected_events: list[tuple[int, bool]],
) -> None:
    controller = HorizontalController()
    events = [ScaleEvent(c, NOW - age) for c, age in previous]
    behavior = None
    if rules is not None:
        generated = generate_scaling_rules(*rules)
        behavior = (
            Behavior(generated, DEFAULT_SCALE_DOWN_RULES)
            if direction == "up"
            else Behavior(DEFAULT_SCALE_UP_RULES, generated)
        )
    if direction == "up":
        controller.scale_up_events = events
    else:
        controller.scale_down_events = events
    assert get_replicas_change_per_period(60, events, NOW) == expected_change
    new = 10 + change if direction == "up" else 10 - change
    controller.store_scale_event(behavior, 10, new, NOW)
    stored = controller.scale_up_events if direction == "up" else controller.scale_down_events
    assert [(e.replica_change, e.outdated) for e in stored] == expected_events


# --- replica_calculator_test.go ---------------------------------------------------------------

THREE_MINUTES_AGO = NOW - 3 * MINUTE
LONG_AGO = NOW - 3600.0
CPU_REQUEST = 2000  # two containers of 1.0 CPU each, as in the Go fixtures


def cpu_pods(
    levels: list[int],
    *,
    count: int | None = None,
    ready: list[bool] | None = None,
    start: list[float] | None = None,
    phase: list[str] | None = None,
) -> list[PodSample]:
    """Pods whose two containers each report ``level`` millicores (so the pod uses 2 x level)."""
    pods = []
    for index in range(count or len(levels)):
        started = start[index] if start else LONG_AGO
        metrics = {}
        if index < len(levels):
            metrics["cpu"] = MetricSample(2 * levels[index], NOW, 60.0)
        pods.append(
            PodSample(
                f"pod-{index}",
                phase=phase[index] if phase else "Running",
                ready=ready[index] if ready else True,
                start_time=started,
                ready_transition_time=started,
                requests={"cpu": CPU_REQUEST},
                metrics=metrics,
            )
        )
    return pods


RESOURCE_CASES = [
    ("scale up", 3, cpu_pods([300, 500, 700]), 30, 5, 50),
    ("scale up: unready pod scales less", 3, cpu_pods([300, 500, 700], ready=[False, True, True]), 30, 4, 60),
    (
        "scale up: hot-CPU pod scales less",
        3,
        cpu_pods([300, 500, 700], start=[NOW, THREE_MINUTES_AGO, THREE_MINUTES_AGO]),
        30,
        4,
        60,
    ),
    ("no scale: unready pods ignored", 3, cpu_pods([400, 500, 700], ready=[True, False, False]), 30, 3, 40),
    (
        "no scale: hot-CPU pods ignored",
        3,
        cpu_pods([400, 500, 700], ready=[True, False, False], start=[THREE_MINUTES_AGO, NOW, NOW]),
        30,
        3,
        40,
    ),
    (
        "scale up: failed pods ignored",
        2,
        cpu_pods(
            [500, 700],
            count=4,
            ready=[True, True, False, False],
            phase=["Running", "Running", "Failed", "Failed"],
        ),
        30,
        4,
        60,
    ),
    ("scale down", 5, cpu_pods([100, 300, 500, 250, 250]), 50, 3, 28),
    (
        "scale down: exclude unready pods",
        5,
        cpu_pods([100, 300, 500, 250, 250], ready=[True, True, True, False, False]),
        50,
        2,
        30,
    ),
    (
        "scale down: exclude unscheduled pods",
        5,
        cpu_pods(
            [100], count=5, ready=[True, False, False, False, False], phase=["Running"] + ["Pending"] * 4
        ),
        50,
        1,
        10,
    ),
    (
        "scale down: ignore hot-CPU pods",
        5,
        cpu_pods([100, 300, 500, 250, 250], start=[THREE_MINUTES_AGO] * 3 + [NOW, NOW]),
        50,
        2,
        30,
    ),
]


@pytest.mark.parametrize(
    ("current", "pods", "target", "expected", "utilization"),
    [case[1:] for case in RESOURCE_CASES],
    ids=[case[0] for case in RESOURCE_CASES],
)
def test_resource_replicas(
    current: int, pods: list[PodSample], target: int, expected: int, utilization: int
) -> None:
    calculator = ReplicaCalculator(cpu_initialization_period=2 * MINUTE, delay_of_initial_readiness=10.0)
    replicas, util, _ = calculator.get_resource_replicas(current, target, "cpu", pods, NOW)
    assert (replicas, util) == (expected, utilization)


def metric_pods(
    levels: list[int],
    *,
    count: int | None = None,
    ready: list[bool] | None = None,
    start: list[float] | None = None,
) -> list[PodSample]:
    pods = []
    for index in range(count or len(levels)):
        started = start[index] if start else LONG_AGO
        metrics = {"qps": MetricSample(levels[index], NOW)} if index < len(levels) else {}
        pods.append(
            PodSample(
                f"pod-{index}",
                ready=ready[index] if ready else True,
                start_time=started,
                ready_transition_time=started,
                metrics=metrics,
            )
        )
    return pods


POD_METRIC_CASES = [
    ("scale up", 3, metric_pods([20000, 10000, 30000]), 15000, None, 4, 20000),
    (
        "scale up: unready hot-CPU pod scales less",
        3,
        metric_pods(
            [50000, 10000, 30000],
            ready=[True, True, False],
            start=[THREE_MINUTES_AGO, THREE_MINUTES_AGO, NOW],
        ),
        15000,
        None,
        6,
        30000,
    ),
    (
        "scale up: unready hot-CPU pods avoid scale-down",
        3,
        metric_pods([50000, 15000, 30000], ready=[False, True, False], start=[NOW, THREE_MINUTES_AGO, NOW]),
        15000,
        None,
        7,
        31666,
    ),
    ("scale down", 5, metric_pods([12000] * 5), 20000, None, 3, 12000),
    ("within default tolerance", 3, metric_pods([20000, 21000, 21000]), 20000, None, 3, 20666),
    (
        "outside configurable 1% tolerance",
        3,
        metric_pods([20000, 21000, 21000]),
        20000,
        Tolerances(0.1, 0.01),
        4,
        20666,
    ),
    ("no change: missing metrics", 5, metric_pods([20000, 19000, 21000], count=5), 20000, None, 5, 20000),
    (
        "rolling update with maxSurge: extra pod missing metric",
        2,
        metric_pods([10000, 10000], count=3),
        17000,
        None,
        2,
        10000,
    ),
]


@pytest.mark.parametrize(
    ("current", "pods", "target", "tolerances", "expected", "usage"),
    [case[1:] for case in POD_METRIC_CASES],
    ids=[case[0] for case in POD_METRIC_CASES],
)
def test_pod_metric_replicas(
    current: int, pods: list[PodSample], target: int, tolerances: Tolerances | None, expected: int, usage: int
) -> None:
    calculator = ReplicaCalculator(cpu_initialization_period=2 * MINUTE, delay_of_initial_readiness=10.0)
    replicas, got_usage = calculator.calc_plain_metric_replicas(
        current, target, "qps", pods, NOW, tolerances or Tolerances()
    )
    assert (replicas, got_usage) == (expected, usage)


# --- reconcile: several metrics, one of them failing --------------------------------------------


def cpu_and_failing_metric_spec(cpu_target: int) -> HpaSpec:
    """CPU plus a Pods metric no pod reports (the Go tests fail an external metric instead)."""
    return HpaSpec(
        name="test-hpa",
        min_replicas=2,
        max_replicas=6,
        metrics=(
            MetricSpec("Resource", "cpu", "Utilization", cpu_target),
            MetricSpec("Pods", "qps", "AverageValue", 100),
        ),
        behavior=None,
    )


def one_cpu_pods(millicores: list[int]) -> list[PodSample]:
    pods = cpu_pods([m // 2 for m in millicores])
    for pod in pods:
        pod.requests = {"cpu": 1000}
    return pods


def test_scale_up_when_one_metric_is_empty() -> None:
    """TestScaleUpOneMetricEmpty: CPU asks for 4, the other metric fails: scale up to 4."""
    decision = HorizontalController().reconcile(
        cpu_and_failing_metric_spec(30), 3, one_cpu_pods([300, 400, 500]), NOW
    )
    assert decision.desired_replicas == 4
    assert [p.replicas for p in decision.proposals] == [4, None]


def test_no_scale_down_when_one_metric_is_empty() -> None:
    """TestNoScaleDownOneMetricEmpty: CPU asks for 3, the other metric fails: keep 5."""
    pods = one_cpu_pods([100, 300, 500, 250, 250])
    decision = HorizontalController().reconcile(cpu_and_failing_metric_spec(50), 5, pods, NOW)
    assert decision.desired_replicas == 5
    assert [p.replicas for p in decision.proposals] == [3, None]


def test_bounds_bypass_the_behaviour() -> None:
    """Above maxReplicas the controller goes straight to the bound, whatever the policies allow."""
    slow_down = merge_scaling_rules(
        {"selectPolicy": "Min", "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]},
        DEFAULT_SCALE_DOWN_RULES,
    )
    spec = HpaSpec(
        "api",
        2,
        10,
        (MetricSpec("Pods", "qps", "AverageValue", 1000),),
        Behavior(DEFAULT_SCALE_UP_RULES, slow_down),
    )
    pods = metric_pods([1_000_000] * 14)
    decision = HorizontalController().reconcile(spec, 14, pods, NOW)
    assert decision.desired_replicas == 10
    assert decision.reason == "Current number of replicas above Spec.MaxReplicas"
    below = HorizontalController().reconcile(spec.with_bounds(5, 50), 3, metric_pods([0] * 3), NOW)
    assert below.desired_replicas == 5


def test_quantities_are_milli_values() -> None:
    assert parse_quantity_milli("1000") == 1_000_000
    assert parse_quantity_milli("500m") == 500
    assert parse_quantity_milli("1.5") == 1500
    assert parse_quantity_milli("1Gi") == 2**30 * 1000
    with pytest.raises(ValueError):
        parse_quantity_milli("ten")


# --- Rounding and edge semantics the Go tables do not pin down (derived from the Go code) -----


def test_policy_rounding_matches_go() -> None:
    """Scale-up percentages round up (``math.Ceil``); scale-down percentages truncate (``int32()``)."""
    controller = HorizontalController()
    up = generate_scaling_rules(2, 60, 50, 60, 60)
    assert controller.convert_desired_replicas_with_behavior_rate(
        3, 50, 3, 50, up, DEFAULT_SCALE_DOWN_RULES, NOW
    ) == (
        5,
        "ScaleUpLimit",
    )  # ceil(3 x 1.5) = 5 beats 3 + 2
    down = generate_scaling_rules(0, 0, 10, 60, 300)
    assert controller.convert_desired_replicas_with_behavior_rate(15, 1, 1, 50, up, down, NOW) == (
        13,
        "ScaleDownLimit",
    )
    shipped_down = merge_scaling_rules(
        {
            "selectPolicy": "Min",
            "policies": [
                {"type": "Percent", "value": 10, "periodSeconds": 60},
                {"type": "Pods", "value": 1, "periodSeconds": 60},
            ],
        },
        DEFAULT_SCALE_DOWN_RULES,
    )
    # Min picks the smaller change: int(15 x 0.9) = 13 would remove two, one pod goes.
    assert controller.convert_desired_replicas_with_behavior_rate(15, 1, 1, 50, up, shipped_down, NOW) == (
        14,
        "ScaleDownLimit",
    )


def test_missing_pods_count_as_on_target_when_scaling_down() -> None:
    calculator = ReplicaCalculator()
    pods = metric_pods([5000, 5000, 5000], count=4)
    # (3 x 5000 + 10000) / 4 = 6250 -> ceil(0.625 x 4) = 3, not 2.
    assert calculator.calc_plain_metric_replicas(4, 10000, "qps", pods, NOW) == (3, 5000)


def test_stabilisation_window_excludes_its_boundary() -> None:
    controller = HorizontalController()
    controller.recommendations = [TimestampedRecommendation(2, NOW - 60)]
    window = ScalingRules(60, "Max", ())
    # A recommendation exactly 60 s old is outside a 60 s window (Go's After is strict).
    assert controller.stabilize_recommendation_with_behaviors(2, 9, window, window, NOW) == 9
    controller.recommendations = [TimestampedRecommendation(2, NOW - 59)]
    assert controller.stabilize_recommendation_with_behaviors(2, 9, window, window, NOW) == 2
