"""A long, bounded run of the mixed load: error rate, latency over time, worker memory.

    python -m bench.soak                               # 10 minutes on a throwaway stack
    python -m bench.soak --duration 1800 --window 60   # longer; one table row per window
    python -m bench.soak --template-url URL            # copy a migrated database (faster start)

The stack is the fault runs' (bench/faults/stack.py): PostgreSQL primary and streaming standby,
PgBouncer in transaction mode, Redis, gunicorn. gunicorn's worker recycling (max_requests) is
off for the run, so that memory growth, if any, shows. Prints a table per window (requests,
errors, error rate, p50/p95/p99/max latency, worker RSS) and writes a PNG of the same.
Loopback only; stops by itself after --duration seconds.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

from bench.faults.stack import Gunicorn, rss_kib, stack
from bench.loadgen import LoadGenerator, Report, seed_users, seed_videos

ROOT = Path(__file__).resolve().parents[1]


class MemorySampler:
    """gunicorn's workers' resident memory (KiB), sampled every few seconds."""

    def __init__(self, server: Gunicorn, interval: float = 5.0) -> None:
        self.server = server
        self.interval = interval
        self.samples: list[tuple[float, dict[int, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.started = time.monotonic()

    def take(self) -> dict[int, int]:
        return {pid: rss_kib(pid) for pid in self.server.workers}

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append((time.monotonic() - self.started, self.take()))

    def start(self) -> None:
        self.started = time.monotonic()
        self.samples.append((0.0, self.take()))
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 1)
        self.samples.append((time.monotonic() - self.started, self.take()))


def windows(report: Report, duration: float, width: float) -> list[tuple[float, Report]]:
    rows = []
    start = 0.0
    while start < duration:
        rows.append((start, report.between(start, start + width)))
        start += width
    return rows


def rss_at(memory: MemorySampler, at: float) -> float:
    """Total worker RSS (MiB) of the sample nearest to ``at``."""
    nearest = min(memory.samples, key=lambda sample: abs(sample[0] - at))
    return sum(nearest[1].values()) / 1024


def print_table(rows: list[tuple[float, Report]], memory: MemorySampler, width: float) -> None:
    print(f"{'window':>8} {'requests':>9} {'errors':>7} {'rate %':>7} {'p50 ms':>7} {'p95 ms':>7} "
          f"{'p99 ms':>7} {'max ms':>7} {'RSS MiB':>8}")  # fmt: skip
    for start, window in rows:
        rate = 100.0 * window.failed / window.sent if window.sent else 0.0
        print(
            f"{start / 60:>6.1f} m {window.sent:>9} {window.failed:>7} {rate:>7.3f} "
            f"{window.latency(50) * 1000:>7.1f} {window.latency(95) * 1000:>7.1f} "
            f"{window.latency(99) * 1000:>7.1f} {window.max_latency * 1000:>7.1f} "
            f"{rss_at(memory, start + width):>8.1f}"
        )


def plot(rows: list[tuple[float, Report]], memory: MemorySampler, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [start / 60 for start, _ in rows]
    figure, (latency, errors, rss) = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
    for q, style in ((50, "-"), (95, "--"), (99, ":")):
        latency.plot(minutes, [w.latency(q) * 1000 for _, w in rows], style, label=f"p{q}")
    latency.set_ylabel("latency (ms)")
    latency.legend()
    latency.set_title(title)
    errors.bar(
        minutes,
        [100.0 * w.failed / w.sent if w.sent else 0 for _, w in rows],
        width=0.8 * (minutes[1] - minutes[0]) if len(minutes) > 1 else 0.5,
    )
    errors.set_ylabel("errors (%)")
    pids = sorted({pid for _, sample in memory.samples for pid in sample})
    for pid in pids:
        points = [(at / 60, sample[pid] / 1024) for at, sample in memory.samples if pid in sample]
        rss.plot([p[0] for p in points], [p[1] for p in points], label=f"worker {pid}")
    rss.set_ylabel("RSS (MiB)")
    rss.set_xlabel("minutes")
    rss.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=600, help="seconds of load (default 10 minutes)")
    parser.add_argument("--window", type=float, default=60, help="seconds per table row")
    parser.add_argument("--threads", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--warmup", type=float, default=20, help="seconds of load before measuring")
    parser.add_argument("--template-url", default="", help="a migrated database to copy instead of migrating")
    parser.add_argument("--plot", type=Path, default=ROOT / "var" / "soak.png", help="where to write the PNG")
    args = parser.parse_args(argv)

    with stack(standby=True, pgbouncer=True, template_url=args.template_url) as built:
        server = Gunicorn(built.app_env(GUNICORN_MAX_REQUESTS="0", LOG_LEVEL="WARNING"), workers=args.workers)
        server.start()
        try:
            users = seed_users(server.url, count=6, prefix="soak")
            videos = seed_videos(server.url, users, per_user=4)
            LoadGenerator(server.url, users=users, video_ids=videos, threads=args.threads, seed=7).run(
                args.warmup
            )
            workers_at_start = server.workers
            memory = MemorySampler(server)
            memory.start()
            load = LoadGenerator(server.url, users=users, video_ids=videos, threads=args.threads)
            report = load.run(args.duration)
            memory.stop()
            workers_at_end = server.workers
        finally:
            server.destroy()

    rows = windows(report, args.duration, args.window)
    print(
        report.table(
            f"== soak: {args.duration:.0f} s, {args.threads} threads, {args.workers} gunicorn workers"
        )
    )
    rate = 100.0 * report.failed / report.sent if report.sent else 0.0
    print(f"  error rate          {rate:.4f} %")
    print(f"  throughput          {report.sent / args.duration:.0f} requests/s")
    start_rss = {pid: kib / 1024 for pid, kib in memory.samples[0][1].items()}
    end_rss = {pid: kib / 1024 for pid, kib in memory.samples[-1][1].items()}
    print("  worker RSS (MiB)    start " + ", ".join(f"{pid}: {mib:.1f}" for pid, mib in start_rss.items()))
    print("                      end   " + ", ".join(f"{pid}: {mib:.1f}" for pid, mib in end_rss.items()))
    if workers_at_start != workers_at_end:
        print(f"  NOTE: workers changed during the run: {workers_at_start} -> {workers_at_end}")
    print()
    print_table(rows, memory, args.window)
    plot(rows, memory, args.plot, f"soak: {args.duration / 60:.0f} min, {args.threads} threads")
    print(f"\nplot: {args.plot}")
    return 0 if report.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
