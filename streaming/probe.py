"""ffprobe: what a media file holds, checked before any work starts.

A file that is not a video, has no video stream or cannot be decoded raises ``InvalidMedia``
with a message a user can act on; that is final (retrying cannot fix the file).

An upload is hostile until proven otherwise. ffmpeg's demuxers include playlists and
descriptions that open *other* files or URLs (HLS, DASH, concat, SDP, image sequences, the
lavfi device...), so every ffprobe/ffmpeg run on an upload names what it may use: only the
container demuxers in ``ALLOWED_CONTAINERS`` (``-format_whitelist`` while probing, ``-f`` with
the probed one afterwards) and only the protocol the source itself needs
(``-protocol_whitelist``: ``file`` for a local path, ``http(s)`` for the presigned URL).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from django.conf import settings

PROBE_TIMEOUT = 60  # seconds; a remote (presigned URL) probe reads only the headers it needs

# Demuxers that read one self-contained file: no playlists, no references to other files or
# URLs (``mov`` keeps its external data references off: ffmpeg's ``enable_drefs`` defaults to 0).
# The name is the first of ffprobe's ``format_name`` ("mov,mp4,m4a,3gp,3g2,mj2" -> "mov").
ALLOWED_CONTAINERS: tuple[str, ...] = ("mov", "matroska", "avi", "mpegts", "mpeg", "flv", "asf", "ogg")

NOT_ACCEPTED = (
    "The file's format is not accepted: upload a video file (MP4, MOV, MKV, WebM, AVI, MPEG-TS, "
    "FLV, WMV or Ogg), not a playlist, a list of files or an image"
)


class InvalidMedia(Exception):
    """The file is not a usable video. Permanent: the job is not retried."""


class MediaTooLong(InvalidMedia):
    """Longer than MEDIA_MAX_DURATION (declared by the container, or measured from its packets)."""

    def __init__(self, seconds: float) -> None:
        limit = settings.MEDIA_MAX_DURATION
        super().__init__(f"The video lasts {seconds:.0f} s; the limit is {limit} s.")
        self.seconds = seconds


class ProbeFailed(Exception):
    """ffprobe could not run (missing binary, time-out): transient, worth a retry."""


@dataclass(frozen=True)
class ProbeResult:
    duration: float
    width: int  # as displayed: after rotation and sample aspect ratio
    height: int
    fps: float
    video_codec: str
    audio_codec: str  # "" when there is no audio stream
    bitrate: int | None
    pix_fmt: str
    container: str = ""  # the demuxer every later run names with -f (one of ALLOWED_CONTAINERS)

    @property
    def has_audio(self) -> bool:
        return bool(self.audio_codec)

    @property
    def short_side(self) -> int:
        return min(self.width, self.height)


def _fraction(text: str | None) -> float:
    if not text or text in ("0/0", "N/A"):
        return 0.0
    try:
        return float(Fraction(text))
    except (ValueError, ZeroDivisionError):
        return 0.0


def _rotation(stream: dict[str, Any]) -> int:
    for side_data in stream.get("side_data_list") or []:
        if "rotation" in side_data:
            return int(float(side_data["rotation"]))
    rotate = (stream.get("tags") or {}).get("rotate")
    return int(float(rotate)) if rotate else 0


def _display_size(stream: dict[str, Any]) -> tuple[int, int]:
    width, height = int(stream.get("width") or 0), int(stream.get("height") or 0)
    sar = _fraction(stream.get("sample_aspect_ratio"))
    if sar and abs(sar - 1) > 0.01:
        width = round(width * sar)
    if abs(_rotation(stream)) % 180 == 90:
        width, height = height, width
    return width, height


def _clear_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    detail = lines[-1] if lines else "unknown error"
    # ffprobe prefixes the path; the user knows which file they sent.
    if ": " in detail and detail.split(": ", 1)[0].startswith(("/", "file:", "http")):
        detail = detail.split(": ", 1)[1]
    return detail


def source_input(source: str) -> tuple[str, str]:
    """(what to pass to ``-i``, the protocols it may use) for a local path or a URL.

    A local path is opened through ``file:`` explicitly (a name can never select another
    protocol); a URL may use its own scheme and what that scheme runs on, nothing else.
    """
    if source.startswith("https://"):
        return source, "https,tls,tcp"
    if source.startswith("http://"):
        return source, "http,tcp"
    if "://" in source or not source.startswith("/"):
        raise ValueError(f"Not an absolute path or an http(s) URL: {source[:40]!r}")
    return f"file:{source}", "file"


def input_options(source: str, container: str = "") -> list[str]:
    """The options before ``-i`` (and ``-i`` itself) for every ffprobe/ffmpeg run on an upload:
    the one demuxer ``container`` (or, to probe, the allowlist), the source's own protocol."""
    target, protocols = source_input(source)
    if container and container not in ALLOWED_CONTAINERS:
        raise InvalidMedia(f"The container {container!r} is not accepted.")
    demuxer = ["-f", container] if container else []
    return [
        *demuxer,
        "-format_whitelist",
        container or ",".join(ALLOWED_CONTAINERS),
        "-protocol_whitelist",
        protocols,
        "-i",
        target,
    ]


def probe(source: str, *, container: str = "") -> ProbeResult:
    """Probe a local path or URL. Raises ``InvalidMedia`` or ``ProbeFailed``.

    ``container`` (from an earlier probe) makes ffprobe use exactly that demuxer.
    """
    command = [
        settings.FFPROBE_BINARY,
        "-v",
        "error",
        "-print_format",
        "json",
        "-show_format",
        "-show_streams",
        *input_options(source, container),
    ]
    try:
        completed = subprocess.run(  # noqa: S603 - fixed binary, no shell
            command, capture_output=True, text=True, timeout=PROBE_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProbeFailed(f"ffprobe could not run: {exc}") from exc
    if completed.returncode != 0:
        if "not on whitelist" in completed.stderr:
            raise InvalidMedia(f"{NOT_ACCEPTED}.")
        raise InvalidMedia(f"The file is not a readable media file ({_clear_error(completed.stderr)}).")
    try:
        data = json.loads(completed.stdout or "{}")
    except json.JSONDecodeError as exc:
        raise InvalidMedia("The file is not a readable media file.") from exc
    result = parse_probe(data)
    if result.duration > settings.MEDIA_MAX_DURATION:
        raise MediaTooLong(result.duration)
    return result


def measure_duration(source: str, *, container: str) -> float:
    """Seconds the file's packets actually span, from a demux pass (stream copy into nothing,
    no decoding: I/O bound, about half a second for a small file). The container's header may
    claim any duration; this is what an encode would have to produce, and what the transcode's
    time limit follows. Raises ``MediaTooLong``, ``InvalidMedia`` or ``ProbeFailed``."""
    command = [
        settings.FFMPEG_BINARY,
        "-nostdin",
        "-v",
        "error",
        *input_options(source, container),
        "-map",
        "0:v:0",
        "-map",
        "0:a:0?",
        "-c",
        "copy",
        "-f",
        "null",
        "-",
        "-progress",
        "pipe:1",
        "-nostats",
    ]
    try:
        completed = subprocess.run(  # noqa: S603 - fixed binary, no shell
            command, capture_output=True, text=True, timeout=settings.MEDIA_DEMUX_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProbeFailed(f"The demux pass could not finish: {exc}") from exc
    if completed.returncode != 0:
        raise InvalidMedia(f"The file is not a readable media file ({_clear_error(completed.stderr)}).")
    spans = [
        int(line.split("=", 1)[1])
        for line in completed.stdout.splitlines()
        if line.startswith("out_time_us=") and line.split("=", 1)[1].isdigit()
    ]
    seconds = (spans[-1] if spans else 0) / 1_000_000
    if seconds > settings.MEDIA_MAX_DURATION:
        raise MediaTooLong(seconds)
    return seconds


def parse_probe(data: dict[str, Any]) -> ProbeResult:
    streams = data.get("streams") or []
    fmt = data.get("format") or {}
    container = _container(fmt)
    videos = [
        s
        for s in streams
        if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
    ]
    if not videos:
        if not streams:
            raise InvalidMedia("The file is not a video: no audio or video stream was found.")
        raise InvalidMedia("The file has no video stream (an audio-only file cannot be streamed as video).")
    video = videos[0]
    width, height = _display_size(video)
    if width < 16 or height < 16:
        raise InvalidMedia(f"The video stream has an unusable size ({width}x{height}).")
    # Still images (a JPEG renamed .mp4) probe as a one-frame "video" with no duration.
    codec = str(video.get("codec_name") or "")
    if codec in {"mjpeg", "png", "bmp", "gif", "webp", "tiff"} and not _fraction(fmt.get("duration")):
        raise InvalidMedia("The file is an image, not a video.")
    duration = _fraction(str(fmt.get("duration") or video.get("duration") or "0"))
    if duration <= 0:
        raise InvalidMedia("The video has no duration (the file may be truncated or corrupt).")
    fps = _fraction(video.get("avg_frame_rate")) or _fraction(video.get("r_frame_rate")) or 25.0
    audios = [s for s in streams if s.get("codec_type") == "audio"]
    bitrate = fmt.get("bit_rate")
    return ProbeResult(
        duration=round(duration, 3),
        width=width,
        height=height,
        fps=round(fps, 3),
        video_codec=codec,
        audio_codec=str(audios[0].get("codec_name") or "unknown") if audios else "",
        bitrate=int(bitrate) if bitrate and str(bitrate).isdigit() else None,
        pix_fmt=str(video.get("pix_fmt") or ""),
        container=container,
    )


def _container(fmt: dict[str, Any]) -> str:
    """The demuxer ffprobe used, checked against the allowlist (whatever the command line said)."""
    name = str(fmt.get("format_name") or "").split(",", 1)[0]
    if name not in ALLOWED_CONTAINERS:
        raise InvalidMedia(f"{NOT_ACCEPTED} (it is {name or 'unknown'}).")
    return name
