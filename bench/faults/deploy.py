"""Deploys under load: the API replaced by a rolling restart (as Kubernetes would, see
``bench/faults/rollout.py``) and reloaded with SIGHUP (gunicorn alone), both under the mixed
load through the stand-in for the Service. Goal: 0 failed requests.

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
            reload = deployment.reload()
            time.sleep(args.after)
            report = load.stop()
        finally:
            deployment.stop()
        outcome = Outcome(name="rollout", report=report, fault_at=fault_at, recovered_at=rolled_at)
        during_rollout = report.between(fault_at, rolled_at + 1)
        during_reload = report.between(reload_at, reload_at + reload["seconds"] + 3)
        outcome.notes["rolling restart"] = (
            f"{rollout['replaced']} pods in {rollout['seconds']} s (ready {rollout['readiness_after_start_s']} s "
            f"after start), preStop {args.pre_stop} s: {during_rollout.sent} requests, "
            f"{during_rollout.failed} failed"
        )
        outcome.notes["SIGHUP reload"] = (
            f"{reload['reloaded']} masters in {reload['seconds']} s: {during_reload.sent} requests, "
            f"{during_reload.failed} failed"
        )
        outcome.notes["balancer"] = (
            f"{deployment.balancer.connections} connections, {deployment.balancer.refused} found no pod"
        )
        missing = acknowledged_missing(built, report.acknowledged_writes)
        outcome.notes["acknowledged writes"] = f"{len(report.acknowledged_writes)}, missing {len(missing)}"
        outcome.check(not missing, f"acknowledged writes missing: {missing[:5]}")
        outcome.check(not report.failures, f"{report.failed} requests failed")
        return outcome
