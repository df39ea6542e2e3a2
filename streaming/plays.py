"""Play counting at scale: a Redis counter per play, deduplicated per viewer per video.

A play sets ``vp:plays:seen:<video>:<viewer>`` (NX, with the dedup window as its TTL) and, only
when that key was new, increments the video's field in the pending hash and, for a signed-in
viewer, appends the play to the pending watch history (``vp:plays:history``); all in one Lua
call, which also takes the viewer's concurrent-stream lease (``sessions``) when the leases live
on the same server: the stream endpoint's writes are one round trip and no SQL. A beat task
renames the pending hash and list aside, adds the counts to ``Video.view_count`` in batches and
writes the history rows with one INSERT per batch and shard, so the database sees one write per
batch, never one per view.
"""

from __future__ import annotations

import functools
import json
import uuid
from datetime import UTC, datetime
from typing import Any, Final

import redis
from django.conf import settings

from . import sessions

PENDING_KEY = "vp:plays:pending"
FLUSHING_PREFIX = "vp:plays:flushing:"
SEEN_PREFIX = "vp:plays:seen:"
HISTORY_KEY = "vp:plays:history"
HISTORY_FLUSHING_PREFIX = "vp:plays:history:flushing:"

# What ``start`` answers.
REFUSED: Final = 0  # the viewer is at their plan's concurrent-stream limit: nothing recorded
ALLOWED: Final = 1  # playback allowed, the play already counted within the dedup window
COUNTED: Final = 2  # playback allowed and the play counted

# The stream endpoint's one call. KEYS: the seen key, the pending hash, the pending history and,
# for a signed-in viewer whose leases live on this server, their lease set. ARGV: the dedup
# window (s), the video id, the history entry ('' for none), then the lease id, its ms and the
# limit. Answers REFUSED, ALLOWED or COUNTED.
_START = (
    sessions.ACQUIRE_FUNCTION
    + """
if #KEYS == 4 and acquire_lease(KEYS[4], ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])) == 0 then
  return 0
end
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
  if ARGV[3] ~= '' then
    redis.call('RPUSH', KEYS[3], ARGV[3])
  end
  return 2
end
return 1
"""
)


@functools.lru_cache(maxsize=4)
def _client(url: str) -> Any:
    return redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)


def counter_client() -> Any | None:
    """The Redis client for play counts, or None on the embedded default (no Redis)."""
    url = settings.VIEW_COUNTER_REDIS_URL
    return _client(url) if url else None


@functools.lru_cache(maxsize=4)
def _start_script(client: Any) -> Any:
    # EVALSHA: the script's 40-character digest goes over the wire, not its source (redis-py
    # loads the script on the first NOSCRIPT answer).
    return client.register_script(_START)


def history_entry(*, user_id: str, video_id: str, rendition_height: int | None, at: datetime) -> str:
    """A play waiting for the watch history, as queued in Redis."""
    return json.dumps([user_id, video_id, rendition_height, round(at.timestamp(), 3)], separators=(",", ":"))


def parse_history_entry(raw: bytes | str) -> tuple[str, str, int | None, datetime] | None:
    """(user id, video id, rendition height, when) of a queued play; None if malformed."""
    try:
        user_id, video_id, height, at = json.loads(raw)
        when = datetime.fromtimestamp(at, UTC)
        return str(user_id), str(video_id), None if height is None else int(height), when
    except (ValueError, TypeError, OverflowError):
        return None


def start(
    client: Any,
    *,
    video_id: str,
    viewer_key: str,
    window: int,
    history: str | None,
    lease: tuple[str, str, int, int] | None,
) -> int:
    """A playback's start in one call: takes ``lease`` ((set key, lease id, ms, limit), when
    given), then counts the play unless this viewer played this video within ``window`` seconds
    and, when counted, queues ``history``. REFUSED (nothing recorded), ALLOWED or COUNTED."""
    keys = [f"{SEEN_PREFIX}{video_id}:{viewer_key}", PENDING_KEY, HISTORY_KEY]
    args: list[Any] = [window, video_id, history or ""]
    if lease is not None:
        key, lease_id, ttl_ms, limit = lease
        keys.append(key)
        args.extend((lease_id, ttl_ms, max(0, limit)))
    return int(_start_script(client)(keys=keys, args=args))


def record(client: Any, *, video_id: str, viewer_key: str, window: int) -> bool:
    """Counts one play unless this viewer played this video within ``window`` seconds."""
    counted = start(client, video_id=video_id, viewer_key=viewer_key, window=window, history=None, lease=None)
    return counted == COUNTED


def take_history(client: Any) -> list[str]:
    """Moves the pending watch history aside for writing; returns every list to write, including
    ones an earlier flush left behind (it crashed before finishing them)."""
    return _move_aside(client, HISTORY_KEY, HISTORY_FLUSHING_PREFIX)


def take_pending(client: Any) -> list[str]:
    """Moves the pending counts aside for flushing; returns every batch key to flush, including
    ones that an earlier flush left behind (it crashed before deleting them)."""
    return _move_aside(client, PENDING_KEY, FLUSHING_PREFIX)


def _move_aside(client: Any, key: str, prefix: str) -> list[str]:
    keys = [found.decode() if isinstance(found, bytes) else found for found in client.scan_iter(f"{prefix}*")]
    fresh = f"{prefix}{uuid.uuid4().hex}"
    try:
        client.rename(key, fresh)
        keys.append(fresh)
    except redis.ResponseError:
        pass  # nothing pending
    return keys


def read_batch(client: Any, key: str) -> dict[str, int]:
    return {
        (field.decode() if isinstance(field, bytes) else field): int(value)
        for field, value in client.hgetall(key).items()
    }
