"""The autoscaling simulator runs the HPA and schedule as shipped (read from k8s/base) and shows
what the source expects: 3 / 10 / 30 / 50 pods at its four load levels, the policy's scale-up
steps, the night bounds, and bounds that apply at once."""

from __future__ import annotations

import dataclasses
import itertools
import shutil
from datetime import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from bench.autoscaling.__main__ import main
from bench.autoscaling.load import LEVELS, PROFILES, LoadProfile
from bench.autoscaling.simulate import (
    DEFAULT_MANIFESTS,
    Manifests,
    PodModel,
    ramp_from_report,
    replica_changes,
    simulate,
    step_figures,
)

# The policy's shape is asserted at a fixed per-pod capacity above the HPA target (the source's
# premise), reached as soon as a pod is Ready, independent of the measured defaults (capacity and
# a new pod's ramp), which the performance run updates.
SHAPE_CAPACITY = 1200.0
SHAPE_MODEL = PodModel(capacity_rps=SHAPE_CAPACITY, ramp=())


@pytest.fixture(scope="module")
def manifests() -> Manifests:
    return Manifests.load()


def test_simulator_reads_the_shipped_objects(manifests: Manifests) -> None:
    hpa = yaml.safe_load((DEFAULT_MANIFESTS / "api" / "hpa.yaml").read_text())
    spec = manifests.hpa
    assert (spec.min_replicas, spec.max_replicas) == (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"])
    up = hpa["spec"]["behavior"]["scaleUp"]
    assert spec.behavior is not None
    assert spec.behavior.scale_up.stabilization_window_seconds == up["stabilizationWindowSeconds"]
    assert [(p.type, p.value, p.period_seconds) for p in spec.behavior.scale_up.policies] == [
        (p["type"], p["value"], p["periodSeconds"]) for p in up["policies"]
    ]
    assert [m.name for m in spec.metrics] == ["cpu", "memory", "http_requests_per_second"]
    assert {(c.hour, c.min_replicas, c.max_replicas) for c in manifests.schedule.changes} == {
        (1, 2, 10),
        (6, 5, 50),
    }


def test_a_changed_manifest_changes_the_simulation(tmp_path: Path) -> None:
    copy = tmp_path / "base"
    shutil.copytree(DEFAULT_MANIFESTS, copy)
    hpa_path = copy / "api" / "hpa.yaml"
    hpa = yaml.safe_load(hpa_path.read_text())
    hpa["spec"]["maxReplicas"] = 40
    hpa_path.write_text(yaml.safe_dump(hpa))
    timeline = simulate(PROFILES["levels"], Manifests.load(copy), SHAPE_MODEL)
    assert timeline.replicas.max() == 40


def _level_end(profile: LoadProfile, index: int) -> int:
    return (index + 1) * 20 * 60 - 1


def test_source_levels_give_the_sources_pod_counts(manifests: Manifests) -> None:
    timeline = simulate(PROFILES["levels"], manifests, SHAPE_MODEL)
    at_end_of_level = [int(timeline.replicas[_level_end(PROFILES["levels"], i)]) for i in range(4)]
    assert at_end_of_level == [3, 10, 30, 50]
    assert list(LEVELS) == ["idle", "medium", "high", "peak"]
    # Back to idle: the slow scale-down (one pod a minute after five quiet minutes) reaches 3.
    assert int(timeline.replicas[-1]) == 3


def test_scale_up_follows_the_policy_when_the_metric_sees_the_whole_load(manifests: Manifests) -> None:
    """With an arrival-side metric, +50 % or +2 (the larger) per minute: 3-5-8-12-18-27-41-50."""
    model = PodModel(capacity_rps=SHAPE_CAPACITY, metric_source="offered", ramp=())
    timeline = simulate(PROFILES["step"], manifests, model)
    ups = [(at, before, after) for at, before, after, _ in replica_changes(timeline) if after > before]
    assert [after for _, _, after in ups] == [5, 8, 12, 18, 27, 41, 50]
    assert all(later - earlier == 60 for (earlier, _, _), (later, _, _) in itertools.pairwise(ups))


def test_a_saturated_request_counter_slows_scale_up(manifests: Manifests) -> None:
    """Served requests cannot exceed the capacity: the HPA sees at most capacity / target."""
    served = step_figures(simulate(PROFILES["step"], manifests, SHAPE_MODEL), 600, 3000)
    offered = step_figures(
        simulate(
            PROFILES["step"],
            manifests,
            PodModel(capacity_rps=SHAPE_CAPACITY, metric_source="offered", ramp=()),
        ),
        600,
        3000,
    )
    assert served.replicas_peak == offered.replicas_peak == 50
    assert served.scale_up_seconds is not None and offered.scale_up_seconds is not None
    assert served.scale_up_seconds > 2 * offered.scale_up_seconds
    assert served.above_capacity_seconds > offered.above_capacity_seconds
    # Scaling down is the same either way: one pod a minute after the 5-minute window.
    assert served.scale_down_seconds == offered.scale_down_seconds
    assert served.scale_down_seconds is not None and served.scale_down_seconds >= 300 + 47 * 60


def test_a_new_pods_ramp_leaves_the_surge_short_of_capacity_for_longer(manifests: Manifests) -> None:
    """A pod serving half its capacity in its first minute (ramp) carries less of a surge than
    one at full speed once Ready: more seconds above what the Ready pods can serve."""
    slow = dataclasses.replace(SHAPE_MODEL, metric_source="offered", ramp=((60.0, 0.5),))
    fast = dataclasses.replace(slow, ramp=())
    with_ramp = simulate(PROFILES["step"], manifests, slow)
    at_once = simulate(PROFILES["step"], manifests, fast)
    assert with_ramp.capacity.max() <= with_ramp.ready.max() * SHAPE_CAPACITY
    young = [i for i in range(600, 1200) if with_ramp.capacity[i] < with_ramp.ready[i] * SHAPE_CAPACITY]
    assert young, "new pods should serve less than full capacity while young"
    assert np.all(at_once.capacity == at_once.ready * SHAPE_CAPACITY)
    over_with = int(np.count_nonzero(with_ramp.offered > with_ramp.capacity))
    over_without = int(np.count_nonzero(at_once.offered > at_once.capacity))
    assert over_with > over_without


def test_a_ramp_is_read_from_a_performance_report() -> None:
    report = {
        "ramps": [
            {
                "label": "warmed",
                "reference_rps": 1000.0,
                "per_second": [
                    {"t": float(t), "rps": 500.0 if t < 5 else 900.0 if t < 10 else 1100.0} for t in range(40)
                ],
            }
        ]
    }
    ramp = ramp_from_report(report)
    assert ramp[:3] == ((5.0, 0.5), (10.0, 0.9), (15.0, 1.0))
    model = PodModel(capacity_rps=2000.0, ramp=ramp)
    assert (model.capacity_at(0), model.capacity_at(7), model.capacity_at(60)) == (1000.0, 1800.0, 2000.0)
    with pytest.raises(LookupError):
        ramp_from_report({"ramps": []})


def test_day_follows_the_night_schedule(manifests: Manifests) -> None:
    timeline = simulate(PROFILES["day"], manifests, SHAPE_MODEL)
    night = slice(1 * 3600 + 30, 6 * 3600)
    assert set(np.unique(timeline.min_bound[night])) == {2}
    assert timeline.replicas[night].max() <= 10
    day = slice(6 * 3600 + 30, 24 * 3600)
    assert set(np.unique(timeline.min_bound[day])) == {5}
    assert timeline.replicas[day].min() >= 5
    assert 45 <= timeline.replicas.max() <= 50


def test_new_bounds_apply_at_once(manifests: Manifests) -> None:
    """At 01:00 the night maximum cuts 14 pods to 10 in one step; the policy alone allows -1/min."""
    busy_night = LoadProfile(
        name="busy-night",
        description="14,000 req/s across 01:00",
        duration_seconds=20 * 60,
        start_clock=time(0, 50),
        follow_schedule=True,
        rate=lambda t: 14_000.0,
    )
    timeline = simulate(busy_night, manifests, SHAPE_MODEL, warmup_seconds=1800)
    changes = replica_changes(timeline)
    assert changes[0][1:3] == (14, 10)
    assert timeline.clock(changes[0][0]).strftime("%H:%M") == "01:00"
    assert "above Spec.MaxReplicas" in changes[0][3]
    assert timeline.per_pod_offered[-1] > timeline.model.capacity_rps  # 10 pods cannot carry it


def test_cli_prints_the_timeline_and_writes_a_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "spike.png"
    assert main(["--profile", "spike", "--plot", str(target)]) == 0
    out = capsys.readouterr().out
    assert "api-hpa" not in out or "min" in out
    assert "-> " in out and "step at 14:10" in out
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
