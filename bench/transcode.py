"""Transcode pipeline benchmark: the pipeline's wall time against plain ffmpeg.

In one run, on one generated source, it times:
  * pipeline  - ``media_file_transcode``: probe, the one-invocation ladder with progress
                reporting, publishing to storage, the database rows (no Celery in between);
  * plain     - the same ffmpeg command run by hand (the same ladder, poster and thumbnails);
  * separate  - four ffmpeg runs, one per rung, each decoding the source again.
and prints the medians and the ratios (the pipeline's overhead target is under 5 %).

    python bench/transcode.py                      # 1920x1080, 10 s, 30 fps, one round
    python bench/transcode.py --seconds 20 --rounds 3

It uses a throwaway SQLite database and media folder unless DATABASE_URL is set. It prints
figures and never asserts timings.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=1, help="rounds of the three variants, interleaved")
    return parser.parse_args()


def make_source(path: Path, args: argparse.Namespace) -> None:
    subprocess.run(
        [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi",
            "-i", f"testsrc2=size={args.width}x{args.height}:rate={args.fps}:duration={args.seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={args.seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", "-crf", "23", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-shortest", str(path),
        ],
        check=True,
    )  # fmt: skip


def _cpu() -> float:
    """CPU seconds of this process and its finished children (ffmpeg, ffprobe)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(function) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(wall seconds, CPU seconds) of ``function``. CPU time is what a shared machine's load
    disturbs least; wall time is what a user waits."""
    cpu, started = _cpu(), time.perf_counter()
    function()
    return time.perf_counter() - started, _cpu() - cpu


def main() -> None:
    args = parse_args()
    work = Path(tempfile.mkdtemp(prefix="vp-bench-transcode-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.dev")
    os.environ["MEDIA_ROOT"] = str(work / "media")
    os.environ["VAR_DIR"] = str(work / "var")
    os.environ.pop("AWS_STORAGE_BUCKET_NAME", None)
    if "DATABASE_URL" not in os.environ:
        os.environ["DATABASE_URL"] = f"sqlite:///{work / 'bench.sqlite3'}"
    os.environ["LOG_LEVEL"] = "WARNING"

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from accounts.models import User
    from streaming import ladder, services, storage
    from streaming.models import MediaFile
    from streaming.probe import probe
    from videos.models import Video

    if os.environ["DATABASE_URL"].startswith("sqlite:///" + str(work)):
        call_command("migrate", verbosity=0)
    try:
        source = work / "source.mp4"
        make_source(source, args)
        result = probe(str(source))
        rungs = ladder.ladder_for(result)
        preset = settings.TRANSCODE_X264_PRESET

        def command(out: Path, selected: list[ladder.Rung], images: bool = True) -> list[str]:
            (out / ladder.THUMBNAIL_DIR).mkdir(parents=True, exist_ok=True)
            return ladder.ffmpeg_command(
                ffmpeg=settings.FFMPEG_BINARY,
                source=str(source),
                output_dir=str(out),
                probe=result,
                rungs=selected,
                preset=preset,
                threads=settings.TRANSCODE_THREADS,
                thumbnail_interval=settings.TRANSCODE_THUMBNAIL_INTERVAL,
                images=images,
            )

        def plain() -> None:
            out = work / "plain"
            shutil.rmtree(out, ignore_errors=True)
            subprocess.run(command(out, rungs), check=True, stdout=subprocess.DEVNULL)

        def separate() -> None:
            out = work / "separate"
            shutil.rmtree(out, ignore_errors=True)
            for index, rung in enumerate(rungs):
                # The poster and thumbnails come with the first run only.
                run = command(out / rung.name, [rung], images=index == 0)
                subprocess.run(run, check=True, stdout=subprocess.DEVNULL)

        owner, _ = User.objects.get_or_create(
            username="bench-transcode", defaults={"email": "bench@example.com"}
        )

        def pipeline() -> None:
            video = Video.objects.create(owner=owner, title="bench", status=Video.Status.PROCESSING)
            name = storage.source_name(video.pk, "source.mp4")
            with open(source, "rb") as handle:
                storage.save_file(name, handle)
            media_file = MediaFile.objects.create(
                video=video,
                status=MediaFile.Status.UPLOADED,
                source_path=name,
                source_size=source.stat().st_size,
            )
            elapsed = timed(lambda: services.media_file_transcode(media_file_id=media_file.pk))
            media_file.refresh_from_db()
            if media_file.status != MediaFile.Status.READY:
                raise SystemExit(f"pipeline failed: {media_file.error}")
            timings["pipeline"].append(elapsed)

        timings: dict[str, list[tuple[float, float]]] = {"pipeline": [], "plain": [], "separate": []}
        print(
            f"source: {args.width}x{args.height}, {args.seconds:g} s at {args.fps} fps, with audio; "
            f"ladder {', '.join(r.name for r in rungs)}; x264 preset {preset}; {os.cpu_count()} CPUs"
        )
        for round_number in range(1, args.rounds + 1):
            timings["plain"].append(timed(plain))
            pipeline()
            timings["separate"].append(timed(separate))
            print(
                f"round {round_number}: "
                + ", ".join(
                    f"{name} {timings[name][-1][0]:.2f} s wall / {timings[name][-1][1]:.2f} s CPU"
                    for name in timings
                )
            )
        wall = {name: statistics.median(t[0] for t in values) for name, values in timings.items()}
        cpu = {name: statistics.median(t[1] for t in values) for name, values in timings.items()}
        load = os.getloadavg()[0]
        print()
        print(f"{'variant':<34}{'wall s':>9}{'vs plain':>10}{'CPU s':>9}{'vs plain':>10}")
        for name, label in (
            ("plain", "plain ffmpeg, one invocation"),
            ("pipeline", "pipeline (media_file_transcode)"),
            ("separate", "four separate ffmpeg runs"),
        ):
            print(
                f"{label:<34}{wall[name]:>9.2f}{wall[name] / wall['plain']:>10.3f}"
                f"{cpu[name]:>9.2f}{cpu[name] / cpu['plain']:>10.3f}"
            )
        print()
        overhead_wall = (wall["pipeline"] / wall["plain"] - 1) * 100
        overhead_cpu = (cpu["pipeline"] / cpu["plain"] - 1) * 100
        print(
            "pipeline overhead over plain ffmpeg: "
            f"{overhead_wall:+.1f} % wall, {overhead_cpu:+.1f} % CPU (target < 5 %)"
        )
        saved_wall = (1 - wall["plain"] / wall["separate"]) * 100
        saved_cpu = (1 - cpu["plain"] / cpu["separate"]) * 100
        print(
            "one invocation against four separate runs: "
            f"{saved_wall:+.1f} % wall, {saved_cpu:+.1f} % CPU saved"
        )
        print(
            f"load average (1 min) at the end: {load:.2f} on {os.cpu_count()} CPUs "
            "(wall times are noisy when it is high)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
