"""Argon2id with a cost chosen for the login latency target (docs/accounts.md), a bound on how
many hashes a process computes at once (``LOGIN_HASH_CONCURRENCY``), and the shedding of logins
in a burst (``LOGIN_HASH_SHED_AFTER``)."""

from __future__ import annotations

import collections
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.conf import settings
from django.contrib.auth.hashers import Argon2PasswordHasher

from videoplatform.errors import DomainError

# Seconds a client is told to wait before it signs in again after a login was shed.
RETRY_AFTER = 1

_slots: tuple[int, threading.Semaphore] | None = None
_slots_lock = threading.Lock()
_held = 0  # slots held now in this process (read without the lock: a hint, not a guarantee)
# Whether the hash about to be made may be refused in a burst: set by ``sheddable`` around a
# login's password check, and spent by that check's first hash.
_may_shed: ContextVar[bool] = ContextVar("accounts_login_hash_may_shed", default=False)


class HashingBusy(DomainError):
    """A login shed in a burst: the process was hashing other passwords."""

    status_code = 503
    code = "service_unavailable"
    default_message = "Too many sign-ins at once. Try again in a second."

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(RETRY_AFTER)}


class _Contention:
    """When this process lately found its hashing slots taken (monotonic times, last second)."""

    def __init__(self) -> None:
        self._times: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def burst(self) -> bool:
        """Counts one login that found the slots taken; whether that makes a burst."""
        limit = int(settings.LOGIN_HASH_SHED_AFTER)
        now = time.monotonic()
        with self._lock:
            self._times.append(now)
            while self._times and self._times[0] < now - 1.0:
                self._times.popleft()
            return limit > 0 and len(self._times) > limit


_contention = _Contention()


def _semaphore(size: int) -> threading.Semaphore:
    global _slots
    current = _slots
    if current is not None and current[0] == size:
        return current[1]
    with _slots_lock:
        if _slots is None or _slots[0] != size:
            _slots = (size, threading.Semaphore(size))
        return _slots[1]


@contextmanager
def sheddable() -> Iterator[None]:
    """The first hash in this block (a login's password check) may be refused with
    ``HashingBusy`` in a burst; later ones (a stale hash upgraded after the check) wait."""
    token = _may_shed.set(True)
    try:
        yield
    finally:
        _may_shed.reset(token)


@contextmanager
def hash_slot() -> Iterator[None]:
    """Holds one of the process's ``LOGIN_HASH_CONCURRENCY`` hashing slots (0: no bound).

    An Argon2 hash takes a whole core for tens of milliseconds (outside the GIL): without a bound,
    a burst of logins would take every core of the pod from the readers. A hash that finds every
    slot taken waits for one. A login's check (``sheddable``) does not wait while the process is
    in a burst (more than ``LOGIN_HASH_SHED_AFTER`` such finds in the last second): it raises
    ``HashingBusy`` at once, so that waiting logins do not hold every request thread of the
    process; nor does it wait longer than ``LOGIN_HASH_WAIT`` seconds."""
    size = int(settings.LOGIN_HASH_CONCURRENCY)
    if size <= 0:
        yield
        return
    global _held
    slots = _semaphore(size)
    may_shed = _may_shed.get()
    _may_shed.set(False)
    if not slots.acquire(blocking=False):
        burst = _contention.burst()
        if may_shed and burst:
            raise HashingBusy()
        if not slots.acquire(timeout=float(settings.LOGIN_HASH_WAIT) if may_shed else None):
            raise HashingBusy()
    with _slots_lock:
        _held += 1
    try:
        yield
    finally:
        with _slots_lock:
            _held -= 1
        slots.release()


def refuse_in_burst() -> None:
    """Raises ``HashingBusy`` when this process is in a burst and every slot is taken: called
    first thing by a login, so that a shed login costs no throttle count, no query and no hash
    (the check in ``hash_slot`` still sheds one that gets past this one)."""
    size = int(settings.LOGIN_HASH_CONCURRENCY)
    if size <= 0 or int(settings.LOGIN_HASH_SHED_AFTER) <= 0 or _held < size:
        return
    if _contention.burst():
        raise HashingBusy()


def _after_fork_in_child() -> None:
    global _slots, _slots_lock, _contention, _held
    _slots, _slots_lock = None, threading.Lock()  # a slot held at the fork belongs to the parent
    _contention, _held = _Contention(), 0


os.register_at_fork(after_in_child=_after_fork_in_child)


class TunedArgon2PasswordHasher(Argon2PasswordHasher):
    """Argon2id, same algorithm name as Django's, so hashes at another cost upgrade on login.

    The cost is read from the settings on each use (not frozen at import), so it can be tuned
    per deployment through the environment. Making and checking a hash hold a hashing slot.
    """

    @property
    def time_cost(self) -> int:  # type: ignore[override]
        return int(settings.ARGON2_TIME_COST)

    @property
    def memory_cost(self) -> int:  # type: ignore[override]
        return int(settings.ARGON2_MEMORY_COST_KIB)

    @property
    def parallelism(self) -> int:  # type: ignore[override]
        return int(settings.ARGON2_PARALLELISM)

    def encode(self, password: str, salt: str) -> str:
        with hash_slot():
            return str(super().encode(password, salt))

    def verify(self, password: str, encoded: str) -> bool:
        with hash_slot():
            return bool(super().verify(password, encoded))
