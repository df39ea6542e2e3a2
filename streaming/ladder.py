"""The HLS ladder (source 5.2) and the one ffmpeg command that produces it.

One invocation decodes the source once, splits the decoded frames into every rung, encodes each
with aligned keyframes forced at the same timestamps in every rung, one at the start of each
segment (two 1 s segments first, so that a player can start after one second of video, then 4 s
segments), and writes the poster and the thumbnails from the same decode.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .probe import ProbeResult, input_options

# (rung, peak bits per second): the source's ladder, highest first.
LADDER: tuple[tuple[int, int], ...] = ((1080, 5_000_000), (720, 2_500_000), (480, 1_000_000), (360, 500_000))
# Segments: START_SEGMENTS of START_SEGMENT_SECONDS, then SEGMENT_SECONDS each; a keyframe (IDR)
# opens every segment and there is none inside one. The short first segments are what a player
# must fetch before its first frame (at 1.5 Mb/s, 1 s of 480p takes ~0.7 s, 4 s took ~3 s); the
# long ones after keep the number of requests per minute of video low for the CDN.
START_SEGMENT_SECONDS = 1
START_SEGMENTS = 2
SEGMENT_SECONDS = 4
AUDIO_BITRATE = 128_000
MAX_FPS = 60
THUMBNAIL_HEIGHT = 180
MASTER_PLAYLIST = "master.m3u8"
MEDIA_PLAYLIST = "index.m3u8"
POSTER = "poster.jpg"
THUMBNAIL_DIR = "thumbs"

# H.264 levels (Annex A): (level_idc, max macroblocks/s, max frame size in macroblocks,
# max video bit rate in kbit/s for the High profile = 1.25 x the Main figure).
H264_LEVELS: tuple[tuple[int, int, int, int], ...] = (
    (30, 40_500, 1_620, 12_500),
    (31, 108_000, 3_600, 17_500),
    (32, 216_000, 5_120, 25_000),
    (40, 245_760, 8_192, 25_000),
    (41, 245_760, 8_192, 62_500),
    (42, 522_240, 8_704, 62_500),
    (50, 589_824, 22_080, 168_750),
    (51, 983_040, 36_864, 300_000),
    (52, 2_073_600, 36_864, 300_000),
)


@dataclass(frozen=True)
class Rung:
    quality: int  # the ladder label: the short side (720 for 1280x720 and for 720x1280)
    width: int
    height: int
    bandwidth: int  # peak bits/s of the variant, as announced in the master playlist
    video_bitrate: int
    video_maxrate: int
    level: int  # level_idc, e.g. 31 for 3.1
    has_audio: bool

    @property
    def name(self) -> str:
        return f"{self.quality}p"

    @property
    def codecs(self) -> str:
        video = f"avc1.6400{self.level:02x}"  # High profile, no constraint flags
        return f"{video},mp4a.40.2" if self.has_audio else video

    @property
    def playlist(self) -> str:
        return f"{self.name}/{MEDIA_PLAYLIST}"


def even(value: float) -> int:
    """The nearest even integer, at least 2 (H.264 in 4:2:0 needs even dimensions)."""
    return max(2, 2 * round(value / 2))


def h264_level(width: int, height: int, fps: float, maxrate: int) -> int:
    macroblocks = math.ceil(width / 16) * math.ceil(height / 16)
    per_second = macroblocks * max(fps, 1.0)
    for level, max_mbps, max_fs, max_kbps in H264_LEVELS:
        if macroblocks <= max_fs and per_second <= max_mbps and maxrate <= max_kbps * 1000:
            return level
    return H264_LEVELS[-1][0]


def output_fps(source_fps: float) -> float:
    return min(source_fps, float(MAX_FPS)) if source_fps > 0 else 25.0


def _rung(quality: int, width: int, height: int, bandwidth: int, fps: float, has_audio: bool) -> Rung:
    audio = AUDIO_BITRATE if has_audio else 0
    # Leave room for audio and the MPEG-TS overhead under the announced peak.
    video_budget = max(bandwidth - audio, 100_000)
    maxrate = int(video_budget * 0.92)
    return Rung(
        quality=quality,
        width=width,
        height=height,
        bandwidth=bandwidth,
        video_bitrate=int(video_budget * 0.8),
        video_maxrate=maxrate,
        level=h264_level(width, height, output_fps(fps), maxrate),
        has_audio=has_audio,
    )


def ladder_for(source: ProbeResult) -> list[Rung]:
    """The rungs for ``source``, highest first: none above it, short side laddered, even sizes."""
    short, long_side = source.short_side, max(source.width, source.height)
    portrait = source.height > source.width
    rungs: list[Rung] = []

    def sized(short_target: int) -> tuple[int, int]:
        other = even(long_side * short_target / short)
        return (short_target, other) if portrait else (other, short_target)

    for quality, bandwidth in LADDER:
        if quality <= short:
            width, height = sized(quality)
            rungs.append(_rung(quality, width, height, bandwidth, source.fps, source.has_audio))
    if not rungs:
        # Below the lowest rung: one rendition at the source's own (even) size, its bit rate
        # scaled from the lowest rung by pixel count.
        lowest_quality, lowest_bandwidth = LADDER[-1]
        quality = short - short % 2
        width, height = sized(quality)
        bandwidth = max(150_000, int(lowest_bandwidth * (quality / lowest_quality) ** 2))
        rungs.append(_rung(quality, width, height, bandwidth, source.fps, source.has_audio))
    return rungs


def poster_time(duration: float) -> float:
    return round(min(duration * 0.25, 3.0), 3)


def ffmpeg_command(
    *,
    ffmpeg: str,
    source: str,
    output_dir: str,
    probe: ProbeResult,
    rungs: Sequence[Rung],
    preset: str,
    threads: int = 0,
    thumbnail_interval: int = 10,
    images: bool = True,
) -> list[str]:
    """The single ffmpeg invocation writing every rung, the poster and the thumbnails
    (``images=False`` leaves the last two out). ``source`` is an absolute path, read with the
    demuxer the probe found (``-f``) and the ``file`` protocol only."""
    fps = output_fps(probe.fps)
    gop = max(1, round(fps * SEGMENT_SECONDS))  # the longest GOP: keyframes are forced below
    count = len(rungs)
    labels = [f"s{i}" for i in range(count)]
    fps_filter = f"fps={MAX_FPS}," if probe.fps > MAX_FPS else ""
    branches = [*labels, "sp", "st"] if images else labels
    graph = [f"[0:v:0]{fps_filter}split={len(branches)}" + "".join(f"[{x}]" for x in branches)]
    for index, rung in enumerate(rungs):
        graph.append(
            f"[s{index}]scale={rung.width}:{rung.height}:flags=bicubic,setsar=1,format=yuv420p[v{index}]"
        )
    top = rungs[0]
    graph += (
        [
            f"[sp]trim=start={poster_time(probe.duration)}:duration=1,"
            f"scale={top.width}:{top.height},setsar=1[poster]",
            f"[st]select='isnan(prev_selected_t)+gte(t-prev_selected_t\\,{thumbnail_interval})',"
            f"scale=-2:{THUMBNAIL_HEIGHT},setsar=1[thumbs]",
        ]
        if images
        else []
    )
    command = [
        ffmpeg,
        "-hide_banner",
        "-nostdin",
        "-y",
        "-loglevel",
        "error",
        "-progress",
        "pipe:1",
        "-nostats",
        "-threads",
        str(threads),
        *input_options(source, probe.container),
        "-filter_complex",
        ";".join(graph),
    ]
    stream_map = []
    for index, rung in enumerate(rungs):
        command += ["-map", f"[v{index}]"]
        if rung.has_audio:
            command += ["-map", "0:a:0"]
            stream_map.append(f"v:{index},a:{index},name:{rung.name}")
        else:
            stream_map.append(f"v:{index},name:{rung.name}")
    command += ["-c:v", "libx264", "-preset", preset, "-profile:v", "high", "-threads", str(threads)]
    for index, rung in enumerate(rungs):
        command += [
            f"-b:v:{index}",
            str(rung.video_bitrate),
            f"-maxrate:v:{index}",
            str(rung.video_maxrate),
            f"-bufsize:v:{index}",
            str(rung.video_maxrate * 2),
            f"-level:v:{index}",
            f"{rung.level // 10}.{rung.level % 10}",
        ]
    command += [
        "-g",
        str(gop),
        "-keyint_min",
        str(gop),
        "-sc_threshold",
        "0",
        "-force_key_frames",
        keyframe_expression(),
    ]
    if probe.has_audio:
        command += ["-c:a", "aac", "-b:a", str(AUDIO_BITRATE), "-ac", "2", "-ar", "48000"]
    command += [
        "-f",
        "hls",
        # The muxer cuts at the first keyframe past each boundary; in a VOD playlist it keeps
        # the initial length for the whole list, so the keyframes alone set every segment's
        # length (1 s, 1 s, then 4 s) whatever the muxer's own boundaries.
        "-hls_time",
        str(SEGMENT_SECONDS),
        "-hls_init_time",
        str(START_SEGMENT_SECONDS),
        "-hls_playlist_type",
        "vod",
        "-hls_flags",
        "independent_segments",
        "-hls_segment_type",
        "mpegts",
        "-hls_segment_filename",
        f"{output_dir}/%v/seg_%05d.ts",
        "-var_stream_map",
        " ".join(stream_map),
        f"{output_dir}/%v/{MEDIA_PLAYLIST}",
    ]
    if not images:
        return command
    command += [
        "-map",
        "[poster]",
        "-frames:v",
        "1",
        "-update",
        "1",
        "-q:v",
        "3",
        f"{output_dir}/{POSTER}",
        "-map",
        "[thumbs]",
        "-fps_mode",
        "vfr",
        "-q:v",
        "5",
        f"{output_dir}/{THUMBNAIL_DIR}/thumb_%04d.jpg",
    ]
    return command


def keyframe_expression() -> str:
    """ffmpeg's ``-force_key_frames`` expression: a keyframe at each segment's start (0, 1, 2,
    6, 10, ... s for two 1 s segments then 4 s ones), at the same timestamps in every rung."""
    head = START_SEGMENT_SECONDS * START_SEGMENTS
    return (
        f"expr:if(lt(t,{head}),gte(t,n_forced*{START_SEGMENT_SECONDS}),"
        f"gte(t,{head}+{SEGMENT_SECONDS}*(n_forced-{START_SEGMENTS})))"
    )


def segment_starts(duration: float) -> list[float]:
    """Where the segments of a ``duration`` s video start (seconds).

    >>> segment_starts(11)
    [0, 1, 2, 6, 10]
    """
    starts: list[float] = [i * START_SEGMENT_SECONDS for i in range(START_SEGMENTS)]
    at = float(START_SEGMENT_SECONDS * START_SEGMENTS)
    while at < duration:
        starts.append(int(at) if at == int(at) else at)
        at += SEGMENT_SECONDS
    return [start for start in starts if start < duration]


def master_playlist(rungs: Iterable[Rung | tuple[int, int, int, int, str]]) -> str:
    """A master playlist listing ``rungs`` (highest first), with BANDWIDTH, RESOLUTION, CODECS.

    Items are rungs or (quality, width, height, bandwidth, codecs) tuples (from Rendition rows).
    """
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for item in rungs:
        if isinstance(item, Rung):
            quality, width, height, bandwidth, codecs = (
                item.quality,
                item.width,
                item.height,
                item.bandwidth,
                item.codecs,
            )
        else:
            quality, width, height, bandwidth, codecs = item
        lines.append(f'#EXT-X-STREAM-INF:BANDWIDTH={bandwidth},RESOLUTION={width}x{height},CODECS="{codecs}"')
        lines.append(f"{quality}p/{MEDIA_PLAYLIST}")
    return "\n".join(lines) + "\n"


def master_name(cap: int) -> str:
    """The stored master playlist holding every rung at or below ``cap``."""
    return f"master_{cap}.m3u8"
