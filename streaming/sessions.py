"""Concurrent streams per plan: a signed-in viewer's playbacks hold leases in Redis.

Each viewer has one sorted set, ``vp:streams:<user id>``: a member per playback (the player's
``view_id``, or a hash of the device's address and agent when the player sends none), scored
with the time its lease ends. Asking the stream endpoint for a new playback takes a lease when
fewer than the plan's ``concurrent_streams`` are live; the player's heartbeat beacons renew it
(``STREAM_LEASE_TTL``, 60 s, so a player that vanishes frees its slot within a minute) and its
``stop`` beacon releases it. Taking, renewing and releasing are each one Lua call, so two devices
racing for the last slot cannot both win, whichever pods they reach; Redis' own clock orders them.

Anonymous viewers hold no leases: the limit stops one account being shared, and an anonymous
viewer has none. Without Redis (the embedded default) or when it is unreachable, nothing is
counted and playback is allowed: a viewer is never refused because the counter is down.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import uuid
from typing import Any

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

KEY_PREFIX = "vp:streams:"

# Takes or renews a lease in a viewer's set; 1 taken or renewed, 0 at the limit. A Lua function,
# so that the stream endpoint's one script (plays.START) takes the lease and counts the play in
# one call.
ACQUIRE_FUNCTION = """
local function acquire_lease(key, lease, ttl, limit)
  local now = redis.call('TIME')
  local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now_ms)
  if redis.call('ZSCORE', key, lease) == false then
    if redis.call('ZCARD', key) >= limit then
      return 0
    end
  end
  redis.call('ZADD', key, now_ms + ttl, lease)
  redis.call('PEXPIRE', key, ttl)
  return 1
end
"""

# KEYS[1] the viewer's set; ARGV: lease id, lease ms, limit.
_ACQUIRE = ACQUIRE_FUNCTION + "return acquire_lease(KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]))\n"

# Renews a live lease (never creates one: an expired lease must be taken again at the limit).
_RENEW = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local ttl = tonumber(ARGV[2])
local ends = redis.call('ZSCORE', KEYS[1], ARGV[1])
if ends == false or tonumber(ends) <= now_ms then
  return 0
end
redis.call('ZADD', KEYS[1], now_ms + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
"""


class ConcurrentStreamLimit(Exception):
    """The viewer already has as many playbacks as their plan allows."""

    code = "concurrent_stream_limit"

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(
            f"Your plan allows {limit} stream{'s' if limit != 1 else ''} at once: "
            "stop playback on another device to watch here."
        )


@functools.lru_cache(maxsize=4)
def _client(url: str) -> Any:
    return redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)


def lease_client() -> Any | None:
    """The Redis client for stream leases, or None when there is no Redis (embedded default)."""
    url = settings.STREAM_LEASE_REDIS_URL
    return _client(url) if url else None


@functools.lru_cache(maxsize=8)
def _scripts(client: Any) -> tuple[Any, Any]:
    return client.register_script(_ACQUIRE), client.register_script(_RENEW)


def lease_key(user_id: str) -> str:
    return f"{KEY_PREFIX}{user_id}"


def lease_id(*, view_id: uuid.UUID | None, ip: str, user_agent: str) -> str:
    """The player's view id, else one lease per device (address and agent, hashed)."""
    if view_id is not None:
        return str(view_id)
    return "d:" + hashlib.sha256(f"{ip}|{user_agent}".encode()).hexdigest()[:24]


def stream_lease_acquire(*, user: Any, lease: str, limit: int) -> None:
    """Takes (or renews) ``lease`` among ``user``'s playbacks.

    Raises ConcurrentStreamLimit when ``limit`` other playbacks are live. Anonymous viewers and
    an unreachable Redis are not limited.
    """
    if user is None or not user.is_authenticated:
        return
    client = lease_client()
    if client is None:
        return
    acquire, _ = _scripts(client)
    try:
        ttl_ms = settings.STREAM_LEASE_TTL * 1000
        taken = acquire(keys=[lease_key(user.pk)], args=[lease, ttl_ms, max(0, limit)])
    except redis.RedisError as exc:
        logger.warning("stream leases unavailable, not enforcing the limit: %s", exc)
        return
    if not taken:
        raise ConcurrentStreamLimit(limit)


def stream_lease_renew(*, user: Any, lease: str) -> bool:
    """Extends a live lease of ``user`` (a heartbeat); False when it is not live (or no Redis)."""
    if user is None or not user.is_authenticated:
        return False
    client = lease_client()
    if client is None:
        return False
    _, renew = _scripts(client)
    try:
        return bool(renew(keys=[lease_key(user.pk)], args=[lease, settings.STREAM_LEASE_TTL * 1000]))
    except redis.RedisError as exc:
        logger.warning("stream leases unavailable: %s", exc)
        return False


def stream_lease_release(*, user: Any, lease: str) -> None:
    """Frees ``user``'s lease (playback stopped): the slot is available at once."""
    if user is None or not user.is_authenticated:
        return
    client = lease_client()
    if client is None:
        return
    try:
        client.zrem(lease_key(user.pk), lease)
    except redis.RedisError as exc:
        logger.warning("stream leases unavailable: %s", exc)


def stream_leases_live(*, user_id: str) -> int:
    """How many playbacks of this user hold a live lease (for support and tests)."""
    client = lease_client()
    if client is None:
        return 0
    seconds, micros = client.time()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    return int(client.zcount(lease_key(user_id), f"({now_ms}", "+inf"))
