"""Playback beacons (quality of experience): what players report, counted for /metrics.

A batch of events about one playback (``view_id``) becomes Prometheus samples in the process
that received it (summed over workers like every other metric): start-up time as a histogram,
rebuffering and watching as seconds (their ratio is the rebuffer ratio), rendition switches and
errors as counters. Labels are bounded: the rendition (a rung of the ladder, else ``other``),
the device class (from the User-Agent) and, for errors, a code from hls.js's list (else
``other``); never a video or a viewer. No database write per beacon.

Per video, the same batch is summed in Redis (``record_video_events``: one Lua call): a hash per
video per UTC day holding the views that reported a start-up (one per ``view_id``), start-up
times as counts in fine buckets, seconds watched and stalled, stalls and errors. The beat job
``streaming-qoe-rollup`` writes those days' totals to the database (``streaming/analytics.py``).
"""

from __future__ import annotations

import functools
import logging
import math
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import redis
from django.conf import settings
from django.core.cache import caches
from prometheus_client import Counter, Histogram

from . import ladder

logger = logging.getLogger(__name__)

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


# --- per video, per day, in Redis ------------------------------------------------------------

# Upper bounds (ms) of the start-up buckets kept per video: 100 ms steps up to 2 s (the target),
# coarser beyond. A percentile is read as the upper bound of the bucket that holds it.
STARTUP_BOUNDS_MS: tuple[int, ...] = (
    *range(100, 2001, 100),
    *range(2250, 4001, 250),
    *range(4500, 8001, 500),
    *range(9000, 15001, 1000),
    20_000,
    30_000,
    45_000,
    60_000,
    120_000,
    300_000,
    600_000,
)
DAY_PREFIX = "vp:qoe:day:"
DIRTY_KEY = "vp:qoe:dirty"
ROLLING_PREFIX = "vp:qoe:rolling:"
SEEN_PREFIX = "vp:qoe:seen:"

# KEYS: the day's hash, the dirty set, the view's "start-up counted" key. ARGV: the hash's TTL,
# the dirty member, the start-up bucket field ("" when the batch has no start-up), then field and
# increment pairs. A view's start-up counts once, however often a player sends it.
_RECORD = """
local ttl = tonumber(ARGV[1])
if ARGV[3] ~= '' and redis.call('SET', KEYS[3], '1', 'NX', 'EX', ttl) then
  redis.call('HINCRBY', KEYS[1], 'views', 1)
  redis.call('HINCRBY', KEYS[1], ARGV[3], 1)
end
for i = 4, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], tonumber(ARGV[i + 1]))
end
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('SADD', KEYS[2], ARGV[2])
return 1
"""


@functools.lru_cache(maxsize=4)
def _client(url: str) -> Any:
    return redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)


def qoe_client() -> Any | None:
    """The Redis client for per-video QoE, or None on the embedded default (no Redis)."""
    url = settings.PLAYBACK_QOE_REDIS_URL
    return _client(url) if url else None


@functools.lru_cache(maxsize=4)
def _record_script(client: Any) -> Any:
    return client.register_script(_RECORD)


def startup_bucket(startup_ms: int) -> int:
    """The upper bound of the bucket holding ``startup_ms`` (the last one beyond it)."""
    for bound in STARTUP_BOUNDS_MS:
        if startup_ms <= bound:
            return bound
    return STARTUP_BOUNDS_MS[-1]


def day_key(day: str, video_id: str) -> str:
    return f"{DAY_PREFIX}{day}:{video_id}"


def record_video_events(
    *, video_id: str, view_id: uuid.UUID, events: Iterable[Mapping[str, Any]], now: datetime | None = None
) -> bool:
    """Adds one batch to the video's totals for today (UTC) in Redis. False when not recorded
    (no Redis, or Redis unreachable: a beacon never fails because of it)."""
    client = qoe_client()
    if client is None:
        return False
    increments: dict[str, int] = {}
    startup_field = ""
    for event in events:
        kind = event["type"]
        if kind == "startup" and not startup_field:
            startup_field = f"s{startup_bucket(event['startup_ms'])}"
        elif kind == "rebuffer":
            increments["rebuffers"] = increments.get("rebuffers", 0) + 1
            increments["rebuffer_ms"] = increments.get("rebuffer_ms", 0) + event["duration_ms"]
        elif kind in ("heartbeat", "stop") and event.get("watched_ms"):
            increments["watched_ms"] = increments.get("watched_ms", 0) + event["watched_ms"]
        elif kind == "error":
            name = "fatal_errors" if event["fatal"] else "errors"
            increments[name] = increments.get(name, 0) + 1
    if not startup_field and not increments:
        return False
    day = (now or datetime.now(UTC)).date().isoformat()
    args: list[Any] = [settings.QOE_DAY_TTL, f"{day}:{video_id}", startup_field]
    for field, value in increments.items():
        args += [field, value]
    try:
        _record_script(client)(
            keys=[day_key(day, video_id), DIRTY_KEY, f"{SEEN_PREFIX}{view_id}:{video_id}"], args=args
        )
    except redis.RedisError as exc:
        logger.warning("per-video QoE not recorded (Redis unavailable): %s", exc)
        return False
    return True


def take_dirty(client: Any) -> list[str]:
    """Moves the set of (day, video) totals changed since the last roll-up aside; returns every
    set to roll up, including ones an earlier roll-up left behind (it stopped before the end)."""
    keys = [key.decode() if isinstance(key, bytes) else key for key in client.scan_iter(f"{ROLLING_PREFIX}*")]
    fresh = f"{ROLLING_PREFIX}{uuid.uuid4().hex}"
    try:
        client.rename(DIRTY_KEY, fresh)
        keys.append(fresh)
    except redis.ResponseError:
        pass  # nothing changed
    return keys


def read_totals(client: Any, member: str) -> dict[str, int]:
    """The totals of one ``<day>:<video>`` member so far ({} when they expired)."""
    day, _, video_id = member.partition(":")
    return {
        (field.decode() if isinstance(field, bytes) else field): int(value)
        for field, value in client.hgetall(day_key(day, video_id)).items()
    }


def percentile_ms(histogram: Mapping[int, int], quantile: float) -> int | None:
    """The upper bound of the bucket holding the ``quantile`` of the start-ups counted in
    ``histogram`` (bucket upper bound in ms -> count), None when it is empty.

    >>> percentile_ms({500: 3, 900: 1}, 0.5)
    500
    >>> percentile_ms({500: 3, 900: 1}, 0.95)
    900
    """
    total = sum(histogram.values())
    if total <= 0:
        return None
    rank = max(1, math.ceil(round(quantile * total, 6)))
    seen = 0
    for bound in sorted(histogram):
        seen += histogram[bound]
        if seen >= rank:
            return bound
    return max(histogram)
