"""Test media: short clips generated with ffmpeg (cached per session), and ffprobe checks."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any


def make_clip(
    folder: Path,
    *,
    width: int,
    height: int,
    duration: float = 2.0,
    fps: int = 12,
    audio: bool = True,
    pix_fmt: str = "yuv420p",
    profile: str | None = None,
    extension: str = "mp4",
) -> Path:
    """A small test clip (moving test pattern, a tone), encoded fast; cached by its parameters."""
    key = hashlib.sha1(
        repr((width, height, duration, fps, audio, pix_fmt, profile, extension)).encode()
    ).hexdigest()[:12]
    path = folder / f"clip-{width}x{height}-{key}.{extension}"
    if path.exists():
        return path
    command = [
        "ffmpeg",
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={width}x{height}:rate={fps}:duration={duration}",
    ]
    if audio:
        command += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={duration}"]
    command += ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "32", "-pix_fmt", pix_fmt]
    if profile:
        command += ["-profile:v", profile]
    if audio:
        command += ["-c:a", "aac", "-b:a", "64k", "-shortest"]
    command.append(str(path))
    subprocess.run(command, check=True, timeout=120)
    return path


def ffprobe(path: str | Path, *args: str) -> dict[str, Any]:
    completed = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", *args, str(path)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return json.loads(completed.stdout)


def keyframe_times(playlist: Path) -> list[float]:
    """Presentation times of the video keyframes across a whole media playlist."""
    data = ffprobe(
        playlist,
        "-select_streams",
        "v:0",
        "-skip_frame",
        "nokey",
        "-show_entries",
        "frame=pts_time,best_effort_timestamp_time",
    )
    times = []
    for frame in data.get("frames", []):
        value = frame.get("pts_time") or frame.get("best_effort_timestamp_time")
        if value not in (None, "N/A"):
            times.append(round(float(value), 2))
    return times


def segment_durations(playlist: Path) -> list[float]:
    return [
        float(line.split(":", 1)[1].rstrip(","))
        for line in playlist.read_text().splitlines()
        if line.startswith("#EXTINF:")
    ]


def master_variants(text: str) -> list[dict[str, str]]:
    """The EXT-X-STREAM-INF entries of a master playlist: attributes and the URI."""
    variants = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF:"):
            attributes: dict[str, str] = {}
            rest = line.split(":", 1)[1]
            for part in _split_attributes(rest):
                key, _, value = part.partition("=")
                attributes[key] = value.strip('"')
            attributes["URI"] = lines[index + 1]
            variants.append(attributes)
    return variants


def _split_attributes(text: str) -> list[str]:
    parts, current, quoted = [], "", False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            parts.append(current)
            current = ""
        else:
            current += char
    if current:
        parts.append(current)
    return parts
