"""Argon2id with a cost chosen for the login latency target (docs/accounts.md), and a bound on
how many hashes a process computes at once (``LOGIN_HASH_CONCURRENCY``)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.contrib.auth.hashers import Argon2PasswordHasher

_slots: tuple[int, threading.Semaphore] | None = None
_slots_lock = threading.Lock()


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
def hash_slot() -> Iterator[None]:
    """Holds one of the process's ``LOGIN_HASH_CONCURRENCY`` hashing slots (0: no bound).

    An Argon2 hash takes a whole core for tens of milliseconds (outside the GIL): without a bound,
    a burst of logins would take every core of the pod from the readers. A login that finds every
    slot taken waits for one (it is answered later, never refused)."""
    size = int(settings.LOGIN_HASH_CONCURRENCY)
    if size <= 0:
        yield
        return
    with _semaphore(size):
        yield


def _after_fork_in_child() -> None:
    global _slots, _slots_lock
    _slots, _slots_lock = None, threading.Lock()  # a slot held at the fork belongs to the parent


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
