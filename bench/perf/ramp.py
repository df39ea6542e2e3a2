"""Throughput over time: the steady state a server reaches under the mix, and how fast a new
server (a pod joining under load) gets there.

- ``steady_curve``: one closed-loop run of the mix, its completed answers counted in buckets of
  a few seconds (the curve), the steady state read from its last buckets.
- ``new_pod_ramp``: a second server of the same configuration is started while the first one
  is under the mix (so Redis stays warm and its hot-key set current); the first one's throughput
  in the seconds before is the reference; once the new one answers its readiness path, the load
  moves to it, and its throughput per second over its first seconds is the ramp.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import load
from .load import LoadResult, Requests
from .stack import Server

FIRST = 15.0  # the new pod's first seconds that the goal is about


def steady_curve(
    measure: Callable[..., LoadResult], server: Server, requests: Requests, seconds: float, bucket: float
) -> dict[str, Any]:
    run = measure(server, requests.mix(max(60_000, int(seconds * 1500))), "steady-curve", seconds)
    curve = run.curve(bucket)
    tail = [rps for _, rps in curve[-3:]] or [run.rps]
    return {
        "seconds": round(run.seconds, 1),
        "bucket_s": bucket,
        "curve": [{"t": start, "rps": round(rps, 1)} for start, rps in curve],
        "steady_rps": round(sum(tail) / len(tail), 1),
        "steady_from_s": curve[-len(tail)][0] if curve else 0.0,
        "first_15s_rps": round(run.rps_between(0, FIRST), 1),
        "errors": run.errors,
        "run": run.as_dict(),
    }


def new_pod_ramp(
    wrk: str,
    busy: Server,
    fresh: Server,
    requests: Requests,
    *,
    seconds: float,
    connections: int,
    workdir: Path,
    reference_seconds: float = FIRST,
    ready_path: str = "/ready",
) -> dict[str, Any]:
    """``busy`` serves the mix; ``fresh`` (not started) is started meanwhile and takes the load
    once it answers ``ready_path``. ``busy`` is measured alone first (the reference), then kept
    under the mix in runs of 2 s while ``fresh`` starts; the load moves once the last of them
    ends (at most 2 s after the new server is ready: a readiness probe runs every 5 s)."""
    reference_run = load.run_wrk(
        wrk,
        busy.base_url,
        requests.mix(60_000),
        label=f"{fresh.name}-reference",
        seconds=reference_seconds,
        connections=connections,
        workdir=workdir,
    )
    stop = threading.Event()

    def keep_busy() -> None:
        lines = requests.mix(20_000)
        while not stop.is_set():
            load.run_wrk(
                wrk,
                busy.base_url,
                lines,
                label=f"{fresh.name}-busy",
                seconds=2,
                connections=connections,
                workdir=workdir / "busy",
            )

    thread = threading.Thread(target=keep_busy, daemon=True)
    thread.start()
    began = time.monotonic()
    try:
        fresh.start(ready_path=ready_path)
    finally:
        stop.set()
        thread.join()
    ready_after = time.monotonic() - began
    try:
        run = load.run_wrk(
            wrk,
            fresh.base_url,
            requests.mix(max(60_000, int(seconds * 1500))),
            label=f"{fresh.name}-ramp",
            seconds=seconds,
            connections=connections,
            workdir=workdir,
            server_cpu=fresh.cpu_seconds,
        )
    finally:
        fresh.stop()
    reference = reference_run.rps
    first = run.rps_between(0, FIRST)
    return {
        "server": fresh.name,
        "ready_after_s": round(ready_after, 1),
        "reference_rps": round(reference, 1),
        "first_15s_rps": round(first, 1),
        "first_15s_ratio": round(first / reference, 3) if reference else None,
        "last_rps": round(run.rps_between(max(FIRST, run.seconds - FIRST), run.seconds), 1),
        "per_second": [{"t": start, "rps": round(rps, 1)} for start, rps in run.curve(1.0)],
        "errors": run.errors,
        "run": run.as_dict(),
    }


def plot(rep: dict[str, Any], path: Path) -> Path | None:
    """The steady-state curve and the new pods' ramps, with the floor, as a PNG (matplotlib is a
    development dependency; without it no plot)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    steady = rep.get("steady")
    ramps = rep.get("ramps") or []
    if not steady and not ramps:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    if steady:
        xs = [row["t"] + steady["bucket_s"] / 2 for row in steady["curve"]]
        left.plot(xs, [row["rps"] for row in steady["curve"]], marker="o", label="the mix (closed loop)")
        left.axhline(steady["steady_rps"], color="#2ca02c", ls="--", lw=1, label="steady state")
        if steady.get("floor_rps"):
            left.axhline(steady["floor_rps"], color="#7f7f7f", ls=":", lw=1, label="floor (same mix)")
        left.set_title(f"A server from its start: req/s per {steady['bucket_s']:.0f} s")
        left.set_xlabel("seconds under load")
        left.set_ylabel("req/s")
        left.set_ylim(bottom=0)
        left.legend(fontsize=8)
    for ramp in ramps:
        xs = [row["t"] + 0.5 for row in ramp["per_second"]]
        right.plot(xs, [row["rps"] for row in ramp["per_second"]], label=ramp["label"])
    if ramps:
        right.axhline(ramps[0]["reference_rps"], color="#2ca02c", ls="--", lw=1, label="steady state")
        right.axvline(FIRST, color="#7f7f7f", ls=":", lw=1)
        right.set_title("A new server once ready: req/s per second")
        right.set_xlabel("seconds since it took the load")
        right.set_ylim(bottom=0)
        right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
