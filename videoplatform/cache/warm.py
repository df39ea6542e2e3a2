"""A new process's L1, filled from L2 before it takes requests, from the keys the running
processes use most.

- **The hot-key set**: every serving process writes the keys of its most recently used L1
  entries into one sorted set in Redis (``hot``, after the alias's key prefix) every
  ``CACHE_HOT_KEYS_INTERVAL`` seconds, scored by the time of the report (the most recently used
  key highest). Reports older than three intervals are dropped, and the set keeps at most four
  times ``CACHE_HOT_KEYS`` members: one ``ZADD`` and three trims in one pipeline per process and
  interval. Members are ``kind|scope|variant`` (scopes and variants never hold ``|``).
- **The warm-up**: a new worker reads the top ``CACHE_HOT_KEYS`` members and their L2 entries
  (with each scope's generation) in pipelines of 500 keys, and keeps in L1 the entries a read
  would keep (``Tiers.keep_from_l2``): current epoch and generation, still fresh. Nothing is
  read from the database: a key whose entry has gone is left for the first request.

A member names a cache key, never a value: what the set holds is at most a list of ids of
videos, users and pages, which the API shows anyway.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from django.conf import settings

from . import kinds
from .core import Tiers, tiers
from .local import Key
from .remote import L2_ERRORS

logger = logging.getLogger(__name__)

HOT_SET = "hot"
BATCH = 500
_SEPARATOR = "|"


def member(key: Key) -> str:
    return _SEPARATOR.join(key)


def parse(raw: bytes | str) -> Key | None:
    """The key a member names, or None for one this release does not know (another kind, junk)."""
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    parts = text.split(_SEPARATOR)
    if len(parts) != 3:
        return None
    kind, scope, variant = parts
    if kind not in kinds.KINDS or not kinds.cacheable(scope, variant):
        return None
    return kind, scope, variant


def record(current: Tiers | None = None, count: int | None = None) -> int:
    """Adds this process's most recently used L1 keys to the hot-key set: how many."""
    current = current or tiers()
    count = int(settings.CACHE_HOT_KEYS) if count is None else count
    if count <= 0 or not current.remote.available():
        return 0
    keys = current.l1.hottest(count)
    if not keys:
        return 0
    interval = max(1.0, float(settings.CACHE_HOT_KEYS_INTERVAL))
    now = time.time()
    # The most recently used first: a millisecond apart, all within this report's second.
    step = min(0.001, 1.0 / len(keys))
    scores = {member(key): now - index * step for index, key in enumerate(keys)}
    name = current.remote.key(HOT_SET)
    pipe = current.remote.client().pipeline(transaction=False)
    pipe.zadd(name, scores)  # type: ignore[arg-type]
    pipe.zremrangebyscore(name, "-inf", now - 3 * interval)
    pipe.zremrangebyrank(name, 0, -(4 * count + 1))
    pipe.expire(name, int(3 * interval) + 1)
    pipe.execute()
    return len(keys)


def hot_keys(current: Tiers, count: int) -> list[Key]:
    """The set's ``count`` hottest keys this release knows."""
    raw = current.remote.client().zrevrange(current.remote.key(HOT_SET), 0, count - 1)
    return [key for key in (parse(item) for item in raw) if key is not None]


@dataclass(frozen=True)
class Warmed:
    wanted: int  # keys the hot-key set named
    kept: int  # entries now in this process's L1
    seconds: float
    reason: str = ""  # why nothing was done, if so

    def describe(self) -> str:
        if self.reason:
            return f"L1 not warmed: {self.reason}"
        return f"L1 warmed with {self.kept} of {self.wanted} hot entries from L2 in {self.seconds:.2f} s"


def warm_l1(count: int | None = None, timeout: float | None = None, current: Tiers | None = None) -> Warmed:
    """Fills this process's L1 (``current``'s) from L2 with the hot-key set's top ``count`` keys,
    within ``timeout`` seconds (what is read by then stays)."""
    started = time.monotonic()
    count = int(settings.CACHE_HOT_KEYS) if count is None else count
    timeout = float(settings.WORKER_WARMUP_TIMEOUT) if timeout is None else timeout
    deadline = started + timeout
    if count <= 0:
        return Warmed(0, 0, 0.0, "off (CACHE_HOT_KEYS=0)")
    current = current or tiers()
    if not settings.CACHE_TIERS_ENABLED or not current.remote.available():
        return Warmed(0, 0, 0.0, "no L2")
    # The feed's connection clears L1 and reads the epochs: entries are kept once it is alive.
    current.feed.ensure_started()
    while not current.feed.alive():
        if time.monotonic() >= deadline:
            return Warmed(0, 0, time.monotonic() - started, "the invalidation feed did not connect in time")
        time.sleep(0.01)
    try:
        keys = hot_keys(current, count)
    except L2_ERRORS as exc:
        return Warmed(0, 0, time.monotonic() - started, f"Redis: {type(exc).__name__}")
    kept = 0
    for start in range(0, len(keys), BATCH):
        if time.monotonic() >= deadline:
            break
        kept += current.keep_from_l2(keys[start : start + BATCH])
    return Warmed(len(keys), kept, time.monotonic() - started)


class HotKeyRecorder:
    """A daemon thread that reports this process's hot keys every interval (with a random
    offset, so that the processes of a pod started together do not report together)."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if int(settings.CACHE_HOT_KEYS) <= 0:
            return
        self._thread = threading.Thread(target=self._run, name="cache-hot-keys", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        import random

        interval = max(1.0, float(settings.CACHE_HOT_KEYS_INTERVAL))
        wait = random.uniform(0.25, 1.0) * interval  # spreading, not secrecy
        while not self._stop.wait(wait):
            wait = interval
            try:
                record()
            except L2_ERRORS as exc:
                logger.debug("hot keys not recorded: %s", exc)
            except Exception:  # the thread must survive anything
                logger.exception("hot keys not recorded")
