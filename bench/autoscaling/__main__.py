"""``python -m bench.autoscaling``: simulate the shipped HPA against a load profile.

Prints the replica timeline (every change of spec.replicas, and why) and the figures the
policy implies, and writes a PNG plot.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from .load import PROFILES
from .plot import plot_timeline
from .simulate import (
    DEFAULT_CAPACITY_RPS,
    DEFAULT_MANIFESTS,
    REPO_ROOT,
    Manifests,
    PodModel,
    Timeline,
    ramp_from_report,
    replica_changes,
    simulate,
    step_figures,
)


def _mmss(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}:{rest:02d}"


def print_timeline(tl: Timeline) -> None:
    print(f"profile: {tl.profile.name} ({tl.profile.description})")
    print(
        f"capacity {tl.model.capacity_rps:,.0f} req/s per pod, target {tl.target_rps:,.0f}, "
        f"pod startup {tl.model.startup_seconds:.0f} s, metric: {tl.model.metric_source} requests"
    )
    ramp = ", ".join(f"{100 * fraction:.0f} % until {end:.0f} s" for end, fraction in tl.model.ramp)
    print(f"a new pod's capacity once Ready: {ramp or 'full at once'}")
    for at, low, high, name in tl.bound_changes:
        print(f"  {tl.clock(at):%H:%M:%S}  {name}: min {low}, max {high}")
    print(f"{'time':>8}  {'offered':>9}  {'per pod':>8}  {'replicas':>11}  reason")
    for at, before, after, why in replica_changes(tl):
        i = int(at)
        per_pod = tl.per_pod_offered[i]
        print(
            f"{tl.clock(at):%H:%M:%S}  {tl.offered[i]:>9,.0f}  {per_pod:>8,.0f}  "
            f"{before:>4} -> {after:<4}  {why}"
        )
    over = tl.offered > tl.capacity
    print(
        f"replicas {tl.replicas.min()}..{tl.replicas.max()}, pod-hours {tl.replicas.sum() / 3600:,.1f}, "
        f"seconds above capacity {int(over.sum())}"
    )


def print_step(tl: Timeline, rise: float, fall: float) -> None:
    f = step_figures(tl, rise, fall)
    print(
        f"step at {tl.clock(rise):%H:%M}: {f.replicas_before} -> {f.replicas_peak} replicas in "
        f"{_mmss(f.scale_up_seconds)}; per-pod load above the target for {_mmss(f.above_target_seconds)}, "
        f"above capacity for {_mmss(f.above_capacity_seconds)}; back to the minimum "
        f"{_mmss(f.scale_down_seconds)} after the load fell"
    )


STEPS = {"spike": (10 * 60, 25 * 60), "step": (10 * 60, 50 * 60)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.autoscaling", description=__doc__)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="day")
    parser.add_argument("--manifests", type=Path, default=DEFAULT_MANIFESTS, help="kustomize base directory")
    parser.add_argument(
        "--capacity",
        type=float,
        default=DEFAULT_CAPACITY_RPS,
        help="req/s one pod serves (placeholder until the performance benchmark measures it)",
    )
    parser.add_argument("--startup", type=float, default=PodModel.startup_seconds, help="pod startup seconds")
    parser.add_argument("--metric-source", choices=["served", "offered"], default="served")
    ramp = parser.add_mutually_exclusive_group()
    ramp.add_argument(
        "--ramp-from",
        type=Path,
        help="a new pod's capacity by age from a performance report (var/perf/<time>/report.json)",
    )
    ramp.add_argument("--no-ramp", action="store_true", help="a new pod at full capacity once Ready")
    schedule = parser.add_mutually_exclusive_group()
    schedule.add_argument("--schedule", dest="schedule", action="store_true", default=None)
    schedule.add_argument("--no-schedule", dest="schedule", action="store_false")
    parser.add_argument("--plot", type=Path, help="PNG to write (default docs/img/autoscaling-<profile>.png)")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)

    manifests = Manifests.load(args.manifests)
    model = dataclasses.replace(
        PodModel(
            cpu_request_millicores=manifests.cpu_request_millicores,
            memory_request_mib=manifests.memory_request_mib,
        ),
        capacity_rps=args.capacity,
        startup_seconds=args.startup,
        metric_source=args.metric_source,
    )
    if args.no_ramp:
        model = dataclasses.replace(model, ramp=())
    elif args.ramp_from:
        model = dataclasses.replace(model, ramp=ramp_from_report(json.loads(args.ramp_from.read_text())))
    profile = PROFILES[args.profile]
    tl = simulate(profile, manifests, model, follow_schedule=args.schedule)
    print_timeline(tl)
    if profile.name in STEPS:
        print_step(tl, *STEPS[profile.name])
    if not args.no_plot:
        path = args.plot or REPO_ROOT / "docs" / "img" / f"autoscaling-{profile.name}.png"
        print(f"plot: {plot_timeline(tl, path)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
