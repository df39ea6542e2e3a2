"""Draw a simulated timeline: offered load, replicas and bounds, load per pod against the target."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np

from .simulate import Timeline


def plot_timeline(tl: Timeline, path: Path, title: str | None = None) -> Path:
    seconds = tl.seconds
    clock = np.array([tl.clock(t).replace(tzinfo=None) for t in seconds[::10]], dtype="datetime64[s]")
    every = slice(None, None, 10)
    fig, (load_ax, pods_ax, per_pod_ax) = plt.subplots(
        3, 1, figsize=(11, 8.5), sharex=True, gridspec_kw={"height_ratios": [1, 1.2, 1]}
    )
    zone = tl.start.tzname() or ""
    fig.suptitle(title or f"HPA simulation: {tl.profile.description}", fontsize=11)

    load_ax.plot(clock, tl.offered[every] / 1000, color="#1f77b4", label="offered")
    capacity = tl.capacity[every] / 1000
    load_ax.plot(clock, capacity, color="#2ca02c", lw=1, ls="--", label="capacity of Ready pods")
    over = tl.offered[every] > tl.capacity[every]
    load_ax.fill_between(
        clock, 0, tl.offered[every] / 1000, where=over, color="#d62728", alpha=0.25, label="above capacity"
    )
    load_ax.set_ylabel("thousand req/s")
    load_ax.legend(loc="upper left", fontsize=8)
    load_ax.grid(alpha=0.3)

    pods_ax.step(clock, tl.replicas[every], where="post", color="#ff7f0e", label="replicas (HPA)")
    pods_ax.step(clock, tl.ready[every], where="post", color="#9467bd", lw=1, label="Ready pods")
    pods_ax.step(clock, tl.min_bound[every], where="post", color="grey", lw=0.8, ls=":", label="min / max")
    pods_ax.step(clock, tl.max_bound[every], where="post", color="grey", lw=0.8, ls=":")
    pods_ax.set_ylabel("pods")
    pods_ax.set_ylim(0, max(int(tl.max_bound.max()), int(tl.replicas.max())) * 1.08 + 1)
    pods_ax.legend(loc="upper left", fontsize=8)
    pods_ax.grid(alpha=0.3)

    per_pod = np.nan_to_num(tl.per_pod_offered[every], nan=0.0, posinf=0.0)
    per_pod_ax.plot(clock, per_pod, color="#1f77b4", lw=1, label="offered req/s per Ready pod")
    per_pod_ax.axhline(tl.target_rps, color="#ff7f0e", lw=1, label=f"HPA target {tl.target_rps:,.0f}")
    per_pod_ax.axhline(
        tl.model.capacity_rps, color="#d62728", lw=1, ls="--", label=f"capacity {tl.model.capacity_rps:,.0f}"
    )
    top = min(float(np.nanmax(per_pod)) if per_pod.size else 0.0, tl.model.capacity_rps * 4)
    per_pod_ax.set_ylim(0, max(top, tl.model.capacity_rps) * 1.1)
    per_pod_ax.set_ylabel("req/s per pod")
    per_pod_ax.legend(loc="upper left", fontsize=8)
    per_pod_ax.grid(alpha=0.3)
    span = len(seconds)
    per_pod_ax.xaxis.set_major_locator(
        mdates.HourLocator(interval=2) if span > 6 * 3600 else mdates.MinuteLocator(byminute=range(0, 60, 10))
    )
    per_pod_ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    per_pod_ax.set_xlabel(f"local time ({zone})")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
