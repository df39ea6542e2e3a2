"""Playback beacons (quality of experience): what players report, counted for /metrics.

A batch of events about one playback (``view_id``) becomes Prometheus samples in the process
that received it (summed over workers like every other metric): start-up time as a histogram,
rebuffering and watching as seconds (their ratio is the rebuffer ratio), rendition switches and
errors as counters. Labels are bounded: the rendition (a rung of the ladder, else ``other``),
the device class (from the User-Agent) and, for errors, a code from hls.js's list (else
``other``); never a video or a viewer. No database write per beacon.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from django.core.cache import caches
from prometheus_client import Counter, Histogram

from . import ladder

STARTUP = Histogram(
    "video_startup_seconds",
    "Time from the player asking to play to the first frame, from playback beacons.",
    ["rendition", "device"],
    buckets=(0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 8, 13, 20, 40),
)
WATCHED = Counter(
    "video_watched_seconds",
    "Seconds of video played, from heartbeat beacons (rebuffer ratio = rebuffer / (watched + rebuffer)).",
    ["rendition", "device"],
)
REBUFFER = Counter(
    "video_rebuffer_seconds",
    "Seconds stalled after start-up, from rebuffer beacons.",
    ["rendition", "device"],
)
REBUFFERS = Counter(
    "video_rebuffers", "Stalls after start-up, from rebuffer beacons.", ["rendition", "device"]
)
SWITCHES = Counter(
    "video_rendition_switches", "Rendition switches, up or down the ladder.", ["direction", "device"]
)
ERRORS = Counter("video_playback_errors", "Player errors, by code.", ["code", "fatal", "device"])
BEACONS = Counter(
    "playback_beacons",
    "Beacon batches received, by result (accepted, invalid, throttled).",
    ["result"],
)

RENDITIONS = frozenset(f"{height}p" for height, _ in ladder.LADDER)
EVENT_TYPES = ("startup", "rebuffer", "rendition_switch", "error", "heartbeat", "stop")
# hls.js's ErrorDetails (1.x) and the media element's errors: the codes a label may carry.
ERROR_CODES = frozenset(
    {
        "manifestLoadError",
        "manifestLoadTimeOut",
        "manifestParsingError",
        "manifestIncompatibleCodecsError",
        "levelEmptyError",
        "levelLoadError",
        "levelLoadTimeOut",
        "levelParsingError",
        "levelSwitchError",
        "audioTrackLoadError",
        "audioTrackLoadTimeOut",
        "fragLoadError",
        "fragLoadTimeOut",
        "fragDecryptError",
        "fragParsingError",
        "fragGap",
        "remuxAllocError",
        "keyLoadError",
        "keyLoadTimeOut",
        "bufferAddCodecError",
        "bufferIncompatibleCodecsError",
        "bufferAppendError",
        "bufferAppendingError",
        "bufferStalledError",
        "bufferFullError",
        "bufferSeekOverHole",
        "bufferNudgeOnStall",
        "internalException",
        "internalAbort",
        "attachMediaError",
        "mediaSourceError",
        "streamEndpointError",
        "MEDIA_ERR_ABORTED",
        "MEDIA_ERR_NETWORK",
        "MEDIA_ERR_DECODE",
        "MEDIA_ERR_SRC_NOT_SUPPORTED",
    }
)

_TV = re.compile(r"smart-?tv|tizen|webos|appletv|googletv|crkey|roku|bravia|hbbtv|android tv", re.I)
_TABLET = re.compile(r"ipad|tablet|kindle|silk|playbook|(android(?!.*mobile))", re.I)
_MOBILE = re.compile(r"mobi|iphone|ipod|android.*mobile|windows phone", re.I)
_DESKTOP = re.compile(r"windows nt|macintosh|x11|linux x86_64|cros", re.I)


def device_class(user_agent: str) -> str:
    """``tv``, ``tablet``, ``mobile``, ``desktop`` or ``other``: a label with five values."""
    if _TV.search(user_agent):
        return "tv"
    if _TABLET.search(user_agent):
        return "tablet"
    if _MOBILE.search(user_agent):
        return "mobile"
    if _DESKTOP.search(user_agent):
        return "desktop"
    return "other"


def rendition_label(value: str | None) -> str:
    return value if value in RENDITIONS else "other"


def _height(value: str | None) -> int:
    return int(value[:-1]) if value in RENDITIONS and value else 0


def beacon_allowed(*, ip_bucket: str) -> bool:
    """One more batch from this address within PLAYBACK_BEACON_LIMIT per minute (shared cache)."""
    cache = caches["default"]
    key = f"vp:beacons:ip:{ip_bucket}"
    if cache.add(key, 1, timeout=60):
        return True
    try:
        count = cache.incr(key)
    except ValueError:  # the window ended between add() and incr()
        cache.add(key, 1, timeout=60)
        return True
    return not isinstance(count, int) or count <= settings.PLAYBACK_BEACON_LIMIT


def record_events(*, events: Iterable[Mapping[str, Any]], user_agent: str) -> None:
    """Counts one batch of validated events (``PlaybackEventSerializer``) for /metrics."""
    device = device_class(user_agent)
    for event in events:
        kind = event["type"]
        rendition = rendition_label(event.get("rendition"))
        if kind == "startup":
            STARTUP.labels(rendition, device).observe(event["startup_ms"] / 1000)
        elif kind == "rebuffer":
            REBUFFERS.labels(rendition, device).inc()
            REBUFFER.labels(rendition, device).inc(event["duration_ms"] / 1000)
        elif kind == "heartbeat" or kind == "stop":
            if event.get("watched_ms"):
                WATCHED.labels(rendition, device).inc(event["watched_ms"] / 1000)
        elif kind == "rendition_switch":
            up = _height(event.get("to")) > _height(event.get("from"))
            SWITCHES.labels("up" if up else "down", device).inc()
        elif kind == "error":
            code = event["code"] if event["code"] in ERROR_CODES else "other"
            ERRORS.labels(code, "true" if event["fatal"] else "false", device).inc()
