"""Replica health: which replicas are in rotation, measured on the replicas themselves.

A replica is in rotation when it answers, is a standby streaming from the primary, and its
replay lag is within ``DB_REPLICA_MAX_LAG``. The lag is measured on the replica: zero when it
has replayed everything it received, else the time since the last transaction it replayed.
Each process checks a replica at most every ``DB_REPLICA_CHECK_INTERVAL`` seconds, on its own
small connection, and caches the answer; while one thread checks, the others use the last
answer. A replica out of rotation comes back at the first check that finds it healthy.

Replay positions: every check also reads the replica's replay LSN, and the monitor keeps the
highest one seen per replica (``known``). A read that needs a position (a client's pin, a cache
scope's invalidation) asks ``reached(alias, lsn)``: no I/O when the known position is enough,
else one short probe (``PROBE_SQL``, 100 ms statement timeout) shared by the process's threads.
Known positions are forgotten when a replica leaves the rotation, stops being a standby
(promoted), or streams another timeline.

Promotion: a replica found to be a primary (a failover promoted it) is out of rotation, and its
connections are dropped, the monitor's at once and Django's at the next request boundary
(``epoch``): with a multi-host replica URL (``target_session_attrs=standby``) the next connection
finds whichever server is a standby now, such as the old primary rejoined after ``pg_rewind``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connections

from videoplatform.metrics import (
    DB_REPLICA_CATCHUP,
    DB_REPLICA_IN_ROTATION,
    DB_REPLICA_LAG,
    DB_REPLICA_LSN_PROBES,
    DB_REPLICA_REPLAY_LSN,
)

from .lsn import UNKNOWN, to_pg

logger = logging.getLogger(__name__)

# pg_stat_wal_receiver's status is hidden from roles without pg_read_all_stats; its pid is not.
LAG_SQL = """
SELECT
    pg_is_in_recovery(),
    EXISTS (
        SELECT 1 FROM pg_stat_wal_receiver
        WHERE COALESCE(status = 'streaming', pid IS NOT NULL)
    ),
    CASE
        WHEN NOT pg_is_in_recovery() THEN 0
        WHEN pg_last_wal_receive_lsn() IS NULL THEN NULL
        WHEN pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() THEN 0
        ELSE EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp())
    END,
    pg_last_wal_replay_lsn() - '0/0',
    (SELECT received_tli FROM pg_stat_wal_receiver LIMIT 1)
"""
# One simple-protocol query (an implicit transaction): the timeout applies to this probe only,
# also through a pooler in transaction mode.
PROBE_SQL = (
    "SET LOCAL statement_timeout = '100ms'; "
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn() - '0/0', "
    "(SELECT received_tli FROM pg_stat_wal_receiver LIMIT 1)"
)
# Probes of one replica are at least this far apart (seconds): under load, one probe answers
# every thread that wanted one meanwhile.
PROBE_GAP = 0.002
# Needed positions waiting for a replica, per replica, for the catch-up histogram.
_WAITING_LIMIT = 256


@dataclass(frozen=True)
class ReplicaState:
    alias: str
    in_rotation: bool
    lag_seconds: float | None
    # Why it is out of rotation ("" when in rotation).
    reason: str
    checked_at: float  # time.monotonic()
    replay_lsn: int | None = None

    def describe(self) -> str:
        lag = "unknown" if self.lag_seconds is None else f"{self.lag_seconds:.2f} s"
        replayed = "" if self.replay_lsn is None else f", replayed {to_pg(self.replay_lsn)}"
        if self.in_rotation:
            return f"in rotation, lag {lag}{replayed}"
        return f"out of rotation ({self.reason}{replayed}); reads go to the primary"


class ReplicaMonitor:
    """Per-process cache of replica health (one instance: ``monitor``)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._states: dict[str, ReplicaState] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._connections: dict[str, Any] = {}
        self.checks = 0
        self.probes = 0
        # Highest replay LSN seen per replica, and the timeline it was seen on.
        self._known: dict[str, int] = {}
        self._timelines: dict[str, int] = {}
        self._last_probe: dict[str, float] = {}
        self._waiting: dict[str, dict[int, float]] = {}
        # Bumped when a replica turns out to be a primary: connections opened before are stale.
        self._epochs: dict[str, int] = {}

    def _own_process(self) -> None:
        # After a fork the parent's connections must be dropped, not closed (closing would
        # end the parent's session on the shared socket).
        if self._pid != os.getpid():
            with self._guard:
                if self._pid != os.getpid():
                    self._reset()

    def _lock(self, alias: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(alias, threading.Lock())

    def state(self, alias: str) -> ReplicaState | None:
        """The last known state (no check)."""
        self._own_process()
        return self._states.get(alias)

    def in_rotation(self, aliases: list[str]) -> list[str]:
        """The replicas that may serve reads now, re-checking those whose state is stale."""
        self._own_process()
        interval = settings.DB_REPLICA_CHECK_INTERVAL
        healthy = []
        for alias in aliases:
            state = self._states.get(alias)
            if state is None or time.monotonic() - state.checked_at >= interval:
                # The first check in a process waits; later ones never make a read wait.
                state = self._refresh(alias, blocking=state is None) or state
            if state is not None and state.in_rotation:
                healthy.append(alias)
        return healthy

    def _refresh(self, alias: str, *, blocking: bool) -> ReplicaState | None:
        lock = self._lock(alias)
        if not lock.acquire(blocking=blocking, timeout=-1 if not blocking else self._timeout() + 2):
            return None
        try:
            state = self._states.get(alias)
            if state is not None and time.monotonic() - state.checked_at < settings.DB_REPLICA_CHECK_INTERVAL:
                return state  # another thread checked while this one waited
            return self._measure(alias)
        finally:
            lock.release()

    def check(self, alias: str) -> ReplicaState:
        """Measures now (the readiness probe and the health page do)."""
        self._own_process()
        lock = self._lock(alias)
        with lock:
            return self._measure(alias)

    # --- replay positions ------------------------------------------------------------

    def known(self, alias: str) -> int:
        """The highest replay LSN this process has seen on the replica (0: none)."""
        self._own_process()
        return self._known.get(alias, 0)

    def reached(self, alias: str, lsn: int) -> bool:
        """Whether the replica has replayed ``lsn``: from the known position, else one probe.

        The probe runs on the monitor's connection under the replica's lock: threads that need a
        position while another thread probes wait for its answer (at most the probe's timeout)
        rather than probing too.
        """
        self._own_process()
        if lsn <= 0:
            return True
        if lsn >= UNKNOWN:
            return False
        if self._known.get(alias, 0) >= lsn:
            return True
        lock = self._lock(alias)
        if not lock.acquire(timeout=0.2):
            return False
        try:
            if self._known.get(alias, 0) >= lsn:
                return True  # another thread's probe answered it
            now = time.monotonic()
            if now - self._last_probe.get(alias, 0.0) < PROBE_GAP:
                self._wait_for(alias, lsn, now)
                return False
            self._last_probe[alias] = now
            self.probes += 1
            try:
                conn = self._connection(alias)
                with conn.cursor() as cursor:
                    cursor.execute(PROBE_SQL)
                    cursor.nextset()
                    in_recovery, replay, timeline = cursor.fetchone()
            except Exception as exc:  # noqa: BLE001 - no answer: the caller reads the primary
                DB_REPLICA_LSN_PROBES.labels(alias, "error").inc()
                self._drop_connection(alias)
                logger.info("replay position probe of %s failed: %s", alias, _short(exc))
                return False
            if not in_recovery:
                DB_REPLICA_LSN_PROBES.labels(alias, "error").inc()
                self.forget_position(alias)
                self._promoted(alias)
                self._record(ReplicaState(alias, False, None, "not a standby (promoted?)", time.monotonic()))
                return False
            self._observe(alias, replay, timeline)
            caught_up = self._known.get(alias, 0) >= lsn
            DB_REPLICA_LSN_PROBES.labels(alias, "caught_up" if caught_up else "behind").inc()
            if not caught_up:
                self._wait_for(alias, lsn, now)
            return caught_up
        finally:
            lock.release()

    def epoch(self, alias: str) -> int:
        """Changes each time the replica was found promoted (its connections should be reopened)."""
        self._own_process()
        return self._epochs.get(alias, 0)

    def _promoted(self, alias: str) -> None:
        """The server behind the alias is a primary now: reconnect, the URL may find a standby."""
        self._epochs[alias] = self._epochs.get(alias, 0) + 1
        self._drop_connection(alias)

    def forget_position(self, alias: str) -> None:
        """Forgets what the replica had replayed (it left the rotation, or was promoted)."""
        self._known.pop(alias, None)
        self._timelines.pop(alias, None)
        self._waiting.pop(alias, None)

    def _observe(self, alias: str, replay: Any, timeline: Any) -> None:
        """Learns a replay position (and the timeline it is on) read from the replica."""
        if timeline is not None:
            previous = self._timelines.get(alias)
            if previous is not None and previous != int(timeline):
                logger.warning("replica %s moved to timeline %s: known positions forgotten", alias, timeline)
                self.forget_position(alias)
            self._timelines[alias] = int(timeline)
        if replay is None:
            return
        position = int(replay)
        if position > self._known.get(alias, 0):
            self._known[alias] = position
            DB_REPLICA_REPLAY_LSN.labels(alias).set(position)
            waiting = self._waiting.get(alias)
            if waiting:
                now = time.monotonic()
                for needed in [needed for needed in waiting if needed <= position]:
                    DB_REPLICA_CATCHUP.observe(now - waiting.pop(needed))

    def _wait_for(self, alias: str, lsn: int, now: float) -> None:
        waiting = self._waiting.setdefault(alias, {})
        if lsn not in waiting and len(waiting) < _WAITING_LIMIT:
            waiting[lsn] = now

    def mark_unreachable(self, alias: str, error: BaseException) -> None:
        """A read found the replica unreachable: out of rotation until the next check."""
        self._own_process()
        self._record(ReplicaState(alias, False, None, f"unreachable: {_short(error)}", time.monotonic()))
        self.forget_position(alias)
        lock = self._lock(alias)
        if lock.acquire(blocking=False):
            try:
                self._drop_connection(alias)
            finally:
                lock.release()

    def forget(self) -> None:
        """Drops every cached state and closes the check connections (tests, reconfiguration)."""
        with self._guard:
            for alias in list(self._connections):
                self._drop_connection(alias)
            self._states.clear()
            self._known.clear()
            self._timelines.clear()
            self._last_probe.clear()
            self._waiting.clear()

    # --- measuring -----------------------------------------------------------------

    def _timeout(self) -> int:
        return max(1, int(settings.DB_CONNECT_TIMEOUT))

    def _connection(self, alias: str) -> Any:
        conn = self._connections.get(alias)
        if conn is not None and not conn.closed:
            return conn
        wrapper = connections[alias]
        params = wrapper.get_connection_params()
        params["connect_timeout"] = self._timeout()
        params["prepare_threshold"] = None  # the replica may sit behind PgBouncer too
        conn = wrapper.get_new_connection(params)
        conn.autocommit = True
        self._connections[alias] = conn
        return conn

    def _drop_connection(self, alias: str) -> None:
        conn = self._connections.pop(alias, None)
        if conn is not None:
            with contextlib.suppress(Exception):  # a broken connection is dropped either way
                conn.close()

    def _measure(self, alias: str) -> ReplicaState:
        self.checks += 1
        now = time.monotonic()
        try:
            conn = self._connection(alias)
            with conn.cursor() as cursor:
                cursor.execute(LAG_SQL)
                in_recovery, streaming, lag, replay, timeline = cursor.fetchone()
        except Exception as exc:  # noqa: BLE001 - any failure means the replica cannot serve reads
            self._drop_connection(alias)
            state = ReplicaState(alias, False, None, f"unreachable: {_short(exc)}", now)
        else:
            lag_seconds = None if lag is None else max(0.0, float(lag))
            bound = settings.DB_REPLICA_MAX_LAG
            replay_lsn = None if replay is None or not in_recovery else int(replay)
            if not in_recovery:
                state = ReplicaState(alias, False, lag_seconds, "not a standby (promoted?)", now)
                self._promoted(alias)
            elif not streaming or lag_seconds is None:
                reason = "not streaming from the primary"
                state = ReplicaState(alias, False, lag_seconds, reason, now, replay_lsn)
            elif lag_seconds > bound:
                reason = f"lagging {lag_seconds:.1f} s, more than {bound:g} s"
                state = ReplicaState(alias, False, lag_seconds, reason, now, replay_lsn)
            else:
                state = ReplicaState(alias, True, lag_seconds, "", now, replay_lsn)
            if state.in_rotation:
                self._observe(alias, replay, timeline)
        self._record(state)
        return state

    def _record(self, state: ReplicaState) -> None:
        previous = self._states.get(state.alias)
        self._states[state.alias] = state
        if not state.in_rotation:
            self.forget_position(state.alias)
        lag = state.lag_seconds
        DB_REPLICA_LAG.labels(state.alias).set(math.nan if lag is None else lag)
        DB_REPLICA_IN_ROTATION.labels(state.alias).set(1 if state.in_rotation else 0)
        if previous is None or previous.in_rotation != state.in_rotation:
            log = logger.info if state.in_rotation else logger.warning
            log("replica %s: %s", state.alias, state.describe())


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}"[:200] if text else type(error).__name__


monitor = ReplicaMonitor()
