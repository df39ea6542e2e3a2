"""Deploys under load: the API replaced by a rolling restart (as Kubernetes would, see
``bench/faults/rollout.py``), then reloaded without Kubernetes by SIGHUP and by a TTIN/TTOU
rotation, under the mixed load through the stand-in for the Service. Goal: 0 failed requests
(the SIGHUP reload is measured, not held to it: its old workers stop before the new ones load).

``--pre-stop`` and ``--propagation`` change the Kubernetes timings (the manifests: a 10 s preStop;
an endpoint change takes about a second to reach every node); ``--pre-stop 0`` shows what a
Deployment without the preStop hook drops.
"""

from __future__ import annotations

import argparse
import time

from bench.faults.rollout import Deployment
from bench.faults.run import Outcome, acknowledged_missing
from bench.faults.stack import stack
from bench.loadgen import LoadGenerator, seed_users, seed_videos


def fault_rollout(args: argparse.Namespace) -> Outcome:
    with stack(template_url=args.template_url) as built:
        deployment = Deployment(
            built.app_env(),
            replicas=2,
            workers=args.pod_workers,
            pre_stop=args.pre_stop,
            propagation=args.propagation,
            probe_period=1.0,
        )
        try:
            deployment.start()
            users = seed_users(deployment.url, count=3, prefix="deploy")
            videos = seed_videos(deployment.url, users, per_user=2)
            load = LoadGenerator(deployment.url, users=users, video_ids=videos, threads=args.threads)
            load.start(duration=600)
            time.sleep(args.before)
            fault_at = load.now()
            rollout = deployment.rolling_restart()
            rolled_at = load.now()
            time.sleep(args.before)
            reload_at = load.now()
            reload = deployment.reload("hup")
            time.sleep(args.before)
            rotate_at = load.now()
            rotate = deployment.reload("rotate")
            time.sleep(args.after)
            report = load.stop()
        finally:
            deployment.stop()
        outcome = Outcome(name="rollout", report=report, fault_at=fault_at, recovered_at=rolled_at)
        during_rollout = report.between(fault_at, rolled_at + 1)
        during_reload = report.between(reload_at, reload_at + reload["seconds"] + 3)
        outcome.notes["rolling restart"] = (
            f"{rollout['replaced']} pods in {rollout['seconds']} s, preStop {args.pre_stop} s: "
            f"{during_rollout.sent} requests, "
            f"{during_rollout.failed} failed, slowest {during_rollout.max_latency * 1000:.0f} ms"
        )
        during_rotate = report.between(rotate_at, rotate_at + rotate["seconds"] + 3)
        for label, run, during in (
            ("SIGHUP reload", reload, during_reload),
            ("TTIN/TTOU rotation", rotate, during_rotate),
        ):
            outcome.notes[label] = (
                f"{run['reloaded']} masters in {run['seconds']} s: {during.sent} requests, "
                f"{during.failed} failed, slowest {during.max_latency * 1000:.0f} ms"
            )
        outcome.notes["balancer"] = (
            f"{deployment.balancer.connections} connections, {deployment.balancer.refused} found no pod"
        )
        outcome.notes["phases (s)"] = (
            f"rolling restart {fault_at:.1f}-{rolled_at:.1f}, SIGHUP {reload_at:.1f}-"
            f"{reload_at + reload['seconds']:.1f}, "
            f"rotation {rotate_at:.1f}-{rotate_at + rotate['seconds']:.1f}"
        )
        outcome.notes["failures at (s)"] = sorted({round(f.at, 1) for f in report.failures})
        missing = acknowledged_missing(built, report.acknowledged_writes)
        outcome.notes["acknowledged writes"] = f"{len(report.acknowledged_writes)}, missing {len(missing)}"
        outcome.check(not missing, f"acknowledged writes missing: {missing[:5]}")
        outcome.check(
            not during_rollout.failures, f"{during_rollout.failed} requests failed in the rolling restart"
        )
        outcome.check(not during_rotate.failures, f"{during_rotate.failed} requests failed in the rotation")
        return outcome
