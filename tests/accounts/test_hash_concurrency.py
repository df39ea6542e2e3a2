"""Argon2 hashes a process computes at once are bounded (LOGIN_HASH_CONCURRENCY): logins beyond
the bound wait for a slot and are answered; in a burst (LOGIN_HASH_SHED_AFTER) a login that finds
the slots taken is answered 503 with Retry-After at once, and its attempt is not counted."""

from __future__ import annotations

import threading
import time
from typing import Any

import argon2
import pytest
from django.db import connection
from rest_framework.test import APIClient

from accounts import hashers, throttling
from tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _no_burst_before(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no logins lately found the slots taken (the burst of the test
    before is within the same second)."""
    monkeypatch.setattr(hashers, "_contention", hashers._Contention())


class Overlap:
    """Wraps argon2's verify: counts the hashes running at once and the most ever seen."""

    def __init__(self, verify: Any, hold: float = 0.05) -> None:
        self.verify = verify
        self.hold = hold
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
            time.sleep(self.hold)  # holds the hash open so that concurrent logins would overlap here
            return self.verify(hasher, *args, **kwargs)
        finally:
            with self.lock:
                self.running -= 1


def _logins(
    usernames: list[str], answers: list[Any] | None = None, barrier: threading.Barrier | None = None
) -> list[int]:
    """Logins of these accounts at once (after ``barrier``, if given, which they join)."""
    barrier = barrier or threading.Barrier(len(usernames))
    statuses: list[int] = [0] * len(usernames)
    if answers is not None:
        answers[:] = [None] * len(usernames)

    def run(index: int) -> None:
        try:
            barrier.wait()
            response = APIClient().post(
                "/api/auth/login",
                {"username": usernames[index], "password": DEFAULT_PASSWORD},
                format="json",
            )
            statuses[index] = response.status_code
            if answers is not None:
                answers[index] = response
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
    settings.LOGIN_HASH_SHED_AFTER = 0  # no burst shedding: every login waits its turn
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


def _hashing(monkeypatch: pytest.MonkeyPatch, hold: float) -> Overlap:
    overlap = Overlap(argon2.PasswordHasher.verify, hold=hold)
    monkeypatch.setattr(argon2.PasswordHasher, "verify", lambda self, *a, **k: overlap(self, *a, **k))
    return overlap


def test_two_logins_at_once_both_succeed_with_the_shipped_settings(monkeypatch):
    """The mix's logins (a few a second) rarely meet; when two do, the second waits its turn."""
    users = [UserFactory() for _ in range(2)]
    overlap = _hashing(monkeypatch, hold=0.2)
    assert _logins([user.username for user in users]) == [200, 200]
    assert overlap.most == 1


def test_in_a_burst_logins_are_shed_with_503_and_retry_after_and_not_counted(settings: Any, monkeypatch):
    settings.LOGIN_HASH_CONCURRENCY = 1
    settings.LOGIN_HASH_SHED_AFTER = 1  # the second login to find the slot taken makes a burst
    users = [UserFactory() for _ in range(4)]
    overlap = _hashing(monkeypatch, hold=0.5)  # every other login arrives while the first hashes
    answers: list[Any] = []

    statuses = _logins([user.username for user in users], answers)

    assert sorted(statuses) == [200, 200, 503, 503]  # the first, the one that waited; two shed
    assert overlap.most == 1 and overlap.calls == 2  # a shed login hashed nothing
    for answer in answers:
        if answer.status_code == 503:
            assert answer.json()["error"]["code"] == "service_unavailable"
            assert answer["Retry-After"] == "1"
    # Shed attempts gave back their slots in the failed-login windows: a client told to retry
    # is not walked towards a lockout.
    window = throttling._login_ip_window("127.0.0.1")
    assert int(throttling._cache().get(window.key) or 0) == 0
    shed = [user for user, status in zip(users, statuses, strict=True) if status == 503]
    assert _logins([user.username for user in shed]) == [200, 200]  # the retry goes through


def test_a_login_waits_for_the_slot_at_most_login_hash_wait(settings: Any, monkeypatch):
    settings.LOGIN_HASH_CONCURRENCY = 1
    settings.LOGIN_HASH_SHED_AFTER = 0
    settings.LOGIN_HASH_WAIT = 0.1
    users = [UserFactory() for _ in range(2)]
    _hashing(monkeypatch, hold=1.0)
    assert sorted(_logins([user.username for user in users])) == [200, 503]


def test_registration_waits_and_is_never_shed(settings: Any, monkeypatch):
    """Only a login's check is shed (a client retries a login at no cost); a registration, a
    password change and a stale hash's upgrade wait their turn."""
    settings.LOGIN_HASH_CONCURRENCY = 1
    settings.LOGIN_HASH_SHED_AFTER = 1
    users = [UserFactory() for _ in range(3)]
    _hashing(monkeypatch, hold=0.3)
    barrier = threading.Barrier(4)
    statuses: dict[str, int] = {}

    def register() -> None:
        try:
            barrier.wait()
            time.sleep(0.1)  # after the logins have made the burst
            response = APIClient().post(
                "/api/auth/register",
                {
                    "username": "newcomer",
                    "email": "newcomer@example.com",
                    "password": "a long new passphrase",
                },
                format="json",
            )
            statuses["register"] = response.status_code
        finally:
            connection.close()

    thread = threading.Thread(target=register)
    thread.start()
    login_statuses = _logins([user.username for user in users], barrier=barrier)
    thread.join(60)
    assert 503 in login_statuses  # the burst was on
    assert statuses["register"] == 201


def test_in_a_burst_a_login_is_refused_before_it_costs_a_query_or_a_count(settings: Any):
    """A shed login is answered before the throttle counts, the account lookup and the hash:
    in a burst the refusals must cost the readers as little as possible."""
    from django.test.utils import CaptureQueriesContext

    settings.LOGIN_HASH_CONCURRENCY = 1
    settings.LOGIN_HASH_SHED_AFTER = 1
    user = UserFactory()
    hashers._contention.burst()
    hashers._contention.burst()  # two logins found the slot taken in the last second
    # ... and another login is hashing now.
    with hashers.hash_slot(), CaptureQueriesContext(connection) as queries:
        response = APIClient().post(
            "/api/auth/login", {"username": user.username, "password": DEFAULT_PASSWORD}, format="json"
        )
    assert response.status_code == 503 and response["Retry-After"] == "1"
    assert len(queries) == 0
    assert throttling._cache().get(throttling._login_ip_window("127.0.0.1").key) is None
    response = APIClient().post(
        "/api/auth/login", {"username": user.username, "password": DEFAULT_PASSWORD}, format="json"
    )
    assert response.status_code == 200  # the slot is free again: the retry signs in
