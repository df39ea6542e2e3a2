"""Argon2 hashes a process computes at once are bounded (LOGIN_HASH_CONCURRENCY): logins beyond
the bound wait for a slot and are answered, never refused."""

from __future__ import annotations

import threading
import time
from typing import Any

import argon2
import pytest
from django.db import connection
from rest_framework.test import APIClient

from tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


class Overlap:
    """Wraps argon2's verify: counts the hashes running at once and the most ever seen."""

    def __init__(self, verify: Any) -> None:
        self.verify = verify
        self.running = 0
        self.most = 0
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, hasher: Any, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            self.running += 1
            self.calls += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(0.05)  # holds the hash open so that concurrent logins would overlap here
            return self.verify(hasher, *args, **kwargs)
        finally:
            with self.lock:
                self.running -= 1


def _logins(usernames: list[str]) -> list[int]:
    barrier = threading.Barrier(len(usernames))
    statuses: list[int] = [0] * len(usernames)

    def run(index: int) -> None:
        try:
            barrier.wait()
            response = APIClient().post(
                "/api/auth/login",
                {"username": usernames[index], "password": DEFAULT_PASSWORD},
                format="json",
            )
            statuses[index] = response.status_code
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(usernames))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return statuses


@pytest.mark.parametrize("bound", [1, 2])
def test_concurrent_logins_hash_within_the_bound_and_all_succeed(bound: int, settings: Any, monkeypatch):
    settings.LOGIN_HASH_CONCURRENCY = bound
    users = [UserFactory() for _ in range(6)]
    overlap = Overlap(argon2.PasswordHasher.verify)
    monkeypatch.setattr(argon2.PasswordHasher, "verify", lambda self, *a, **k: overlap(self, *a, **k))

    statuses = _logins([user.username for user in users])

    assert statuses == [200] * 6  # every login answered: none refused or timed out
    assert overlap.calls == 6
    assert 1 <= overlap.most <= bound


def test_without_a_bound_logins_may_hash_together(settings: Any, monkeypatch):
    settings.LOGIN_HASH_CONCURRENCY = 0
    users = [UserFactory() for _ in range(3)]
    overlap = Overlap(argon2.PasswordHasher.verify)
    monkeypatch.setattr(argon2.PasswordHasher, "verify", lambda self, *a, **k: overlap(self, *a, **k))

    assert _logins([user.username for user in users]) == [200] * 3
    assert overlap.calls == 3
