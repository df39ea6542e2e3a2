"""Play counting at scale: a Redis counter per play, deduplicated per viewer per video.

A play sets ``vp:plays:seen:<video>:<viewer>`` (NX, with the dedup window as its TTL) and, only
when that key was new, increments the video's field in the pending hash; both in one Lua call.
A beat task renames the pending hash aside and adds its counts to ``Video.view_count`` in
batches, so the database sees one UPDATE per batch, never one per view.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

import redis
from django.conf import settings

PENDING_KEY = "vp:plays:pending"
FLUSHING_PREFIX = "vp:plays:flushing:"
SEEN_PREFIX = "vp:plays:seen:"

_RECORD = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
  return 1
end
return 0
"""


@functools.lru_cache(maxsize=4)
def _client(url: str) -> Any:
    return redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)


def counter_client() -> Any | None:
    """The Redis client for play counts, or None on the embedded default (no Redis)."""
    url = settings.VIEW_COUNTER_REDIS_URL
    return _client(url) if url else None


@functools.lru_cache(maxsize=4)
def _record_script(client: Any) -> Any:
    # EVALSHA: the script's 40-character digest goes over the wire, not its source (redis-py
    # loads the script on the first NOSCRIPT answer).
    return client.register_script(_RECORD)


def record(client: Any, *, video_id: str, viewer_key: str, window: int) -> bool:
    """Counts one play unless this viewer played this video within ``window`` seconds."""
    seen = f"{SEEN_PREFIX}{video_id}:{viewer_key}"
    return bool(_record_script(client)(keys=[seen, PENDING_KEY], args=[window, video_id]))


def take_pending(client: Any) -> list[str]:
    """Moves the pending counts aside for flushing; returns every batch key to flush, including
    ones that an earlier flush left behind (it crashed before deleting them)."""
    keys = [
        key.decode() if isinstance(key, bytes) else key for key in client.scan_iter(f"{FLUSHING_PREFIX}*")
    ]
    fresh = f"{FLUSHING_PREFIX}{uuid.uuid4().hex}"
    try:
        client.rename(PENDING_KEY, fresh)
        keys.append(fresh)
    except redis.ResponseError:
        pass  # nothing pending
    return keys


def read_batch(client: Any, key: str) -> dict[str, int]:
    return {
        (field.decode() if isinstance(field, bytes) else field): int(value)
        for field, value in client.hgetall(key).items()
    }
