"""The invalidation feed: a Redis pub/sub channel every process listens to.

A write publishes what it invalidated after its commit; each process runs one daemon thread
that applies those messages to its L1. The thread pings Redis every quarter of the lease and
treats the feed as *alive* only while an answer came back within the lease (1 s by default):
a process whose feed is lost or silent stops using its L1 within the lease and flushes it, and
when the feed comes back it flushes again, because messages sent in between are gone.

Messages are JSON: ``{"o": origin, "t": "s", "k": kind, "s": [scopes]}`` for scopes, and
``{"o": origin, "t": "k", "k": kind, "e": epoch}`` when a whole kind moved to a new epoch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from .remote import L2_ERRORS, RemoteTier

logger = logging.getLogger(__name__)


class InvalidationFeed:
    def __init__(
        self,
        remote: RemoteTier,
        *,
        origin: str,
        lease: float,
        on_message: Callable[[dict[str, Any]], None],
        on_connected: Callable[[], None],
        on_lost: Callable[[BaseException | None], None],
        on_idle: Callable[[], None],
    ) -> None:
        self.remote = remote
        self.origin = origin
        self.lease = lease
        self._on_message = on_message
        self._on_connected = on_connected
        self._on_lost = on_lost
        self._on_idle = on_idle
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._connected = False
        self._beat = 0.0  # time.monotonic() of the last sign of life on the subscription

    # --- state read by request threads ---------------------------------------------------
    def alive(self) -> bool:
        return self._connected and time.monotonic() - self._beat < self.lease

    def connected(self) -> bool:
        return self._connected

    # --- lifecycle ------------------------------------------------------------------------
    def ensure_started(self) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive():
            return
        with self._start_lock:
            if (self._thread is not None and self._thread.is_alive()) or self._stop.is_set():
                return
            self._thread = threading.Thread(target=self._run, name="cache-invalidation-feed", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def publish(self, message: dict[str, Any]) -> None:
        self.remote.publish(json.dumps({"o": self.origin, **message}, separators=(",", ":")))

    # --- the listening thread ----------------------------------------------------------------
    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            pubsub: Any = None
            error: BaseException | None = None
            try:
                pubsub = self.remote.client().pubsub(ignore_subscribe_messages=False)
                pubsub.subscribe(self.remote.channel())
                self._await_subscription(pubsub)
                self._beat = time.monotonic()
                self._on_connected()  # flushes L1 and reloads epochs before L1 is used again
                self._connected = True
                backoff = 0.1
                self._listen(pubsub)
            except L2_ERRORS as exc:
                error = exc
            except Exception as exc:  # the thread must survive anything, and retry
                logger.exception("cache invalidation feed failed")
                error = exc
            finally:
                self._connected = False
                if pubsub is not None:
                    with contextlib.suppress(Exception):  # closing a broken connection
                        pubsub.close()
            if self._stop.is_set():
                break
            self._on_lost(error)
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 5.0)

    def _await_subscription(self, pubsub: Any) -> None:
        deadline = time.monotonic() + max(self.lease, 1.0) * 3
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.1)
            if message is not None and message.get("type") == "subscribe":
                return
        raise ConnectionError("no subscription confirmation from Redis")

    def _listen(self, pubsub: Any) -> None:
        ping_every = self.lease / 4
        next_ping = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_ping:
                pubsub.ping()
                next_ping = now + ping_every
            if now - self._beat > self.lease * 2:
                raise ConnectionError("the invalidation feed went silent")
            message = pubsub.get_message(timeout=min(0.05, ping_every))
            if message is not None:
                self._beat = time.monotonic()
                kind = message.get("type")
                if kind == "message":
                    self._dispatch(message.get("data"))
                elif kind == "subscribe":
                    # redis-py reconnected and subscribed again by itself: whatever was published
                    # while the connection was down is lost, so start over as after a reconnect.
                    self._on_connected()
            self._on_idle()

    def _dispatch(self, raw: Any) -> None:
        try:
            message = json.loads(raw)
        except (TypeError, ValueError):
            logger.warning("ignored a malformed cache invalidation message: %r", raw)
            return
        if isinstance(message, dict) and message.get("o") != self.origin:
            self._on_message(message)
