"""Login throttling per account and per address, shared by every process through Redis."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import RequestFactory

from accounts.throttling import client_ip, ip_bucket
from tests.accounts.conftest import error_code, post_login, requires_redis, run_in_other_process
from tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def assert_throttled(response: Any, window: int) -> None:
    assert response.status_code == 429, response.content
    assert error_code(response) == "throttled"
    assert 1 <= int(response["Retry-After"]) <= window


def test_repeated_failures_lock_that_address_out_of_the_account(user: Any, settings: Any) -> None:
    for _ in range(settings.LOGIN_FAILURE_LIMIT_ACCOUNT):
        assert post_login(user.username, "guess", REMOTE_ADDR="203.0.113.9").status_code == 401

    # Even the right password: from this address the account is being guessed.
    locked = post_login(user.username, DEFAULT_PASSWORD, REMOTE_ADDR="203.0.113.9")

    assert_throttled(locked, settings.LOGIN_FAILURE_WINDOW)
    assert locked.json()["error"]["message"].startswith(
        "Too many failed logins for this account from this address."
    )
    other = UserFactory()
    assert post_login(other.username, DEFAULT_PASSWORD, REMOTE_ADDR="203.0.113.9").status_code == 200


def test_nobody_can_lock_the_owner_out_from_another_address(user: Any, settings: Any) -> None:
    """Wrong passwords typed from an attacker's address, again and again, never stop the owner."""
    for _ in range(3):  # the attacker keeps at it, window after window
        for _ in range(settings.LOGIN_FAILURE_LIMIT_ACCOUNT + 2):
            post_login(user.username, "guess", REMOTE_ADDR="203.0.113.9")

        owner = post_login(user.username, DEFAULT_PASSWORD, REMOTE_ADDR="198.51.100.7")

        assert owner.status_code == 200, owner.content
    assert_throttled(
        post_login(user.username, DEFAULT_PASSWORD, REMOTE_ADDR="203.0.113.9"), settings.LOGIN_FAILURE_WINDOW
    )


def test_guesses_spread_over_many_addresses_are_still_throttled(user: Any, settings: Any) -> None:
    settings.LOGIN_FAILURE_LIMIT_ACCOUNT_GLOBAL = 8
    home = "192.0.2.10"
    assert post_login(user.username, DEFAULT_PASSWORD, REMOTE_ADDR=home).status_code == 200

    # Four addresses, two guesses each: every address stays under its own limits.
    for n in range(4):
        for _ in range(2):
            assert post_login(user.username, "guess", REMOTE_ADDR=f"203.0.113.{n}").status_code == 401

    # The account has had its share of guesses: a new address gets no more, even a right one...
    assert_throttled(
        post_login(user.username, DEFAULT_PASSWORD, REMOTE_ADDR="203.0.113.200"),
        settings.LOGIN_FAILURE_WINDOW,
    )
    assert_throttled(
        post_login(user.username, "guess", REMOTE_ADDR="203.0.113.201"), settings.LOGIN_FAILURE_WINDOW
    )
    # ...while the owner, from where they logged in before, is not locked out.
    assert post_login(user.username, DEFAULT_PASSWORD, REMOTE_ADDR=home).status_code == 200
    # Other accounts are not affected.
    assert (
        post_login(UserFactory().username, DEFAULT_PASSWORD, REMOTE_ADDR="203.0.113.200").status_code == 200
    )


def test_a_known_address_still_has_its_own_limit(user: Any, settings: Any) -> None:
    """Having logged in from an address once does not give it unlimited guesses."""
    assert post_login(user.username, DEFAULT_PASSWORD).status_code == 200
    for _ in range(settings.LOGIN_FAILURE_LIMIT_ACCOUNT):
        assert post_login(user.username, "guess").status_code == 401

    assert_throttled(post_login(user.username, DEFAULT_PASSWORD), settings.LOGIN_FAILURE_WINDOW)


def test_username_and_email_count_against_the_same_account(user: Any, settings: Any) -> None:
    for n in range(settings.LOGIN_FAILURE_LIMIT_ACCOUNT):
        identifier = user.username if n % 2 else user.email.upper()
        assert post_login(identifier, "guess").status_code == 401

    assert_throttled(post_login(user.email, DEFAULT_PASSWORD), settings.LOGIN_FAILURE_WINDOW)


def test_unknown_accounts_are_throttled_like_real_ones(settings: Any) -> None:
    for _ in range(settings.LOGIN_FAILURE_LIMIT_ACCOUNT):
        assert post_login("ghost", "guess").status_code == 401

    assert_throttled(post_login("ghost", "guess"), settings.LOGIN_FAILURE_WINDOW)


def test_a_successful_login_resets_the_account_counter(user: Any, settings: Any) -> None:
    almost = settings.LOGIN_FAILURE_LIMIT_ACCOUNT - 1
    for _ in range(almost):
        assert post_login(user.username, "guess").status_code == 401
    assert post_login(user.username, DEFAULT_PASSWORD).status_code == 200

    for _ in range(almost):
        assert post_login(user.username, "guess").status_code == 401
    assert post_login(user.username, DEFAULT_PASSWORD).status_code == 200


def test_an_address_is_throttled_across_accounts(user: Any, settings: Any) -> None:
    for n in range(settings.LOGIN_FAILURE_LIMIT_IP):
        assert post_login(f"someone{n}", "guess", REMOTE_ADDR="198.51.100.20").status_code == 401

    blocked = post_login(user.username, DEFAULT_PASSWORD, REMOTE_ADDR="198.51.100.20")
    elsewhere = post_login(user.username, DEFAULT_PASSWORD, REMOTE_ADDR="198.51.100.21")

    assert_throttled(blocked, settings.LOGIN_FAILURE_WINDOW)
    assert elsewhere.status_code == 200


def test_successful_logins_do_not_use_up_the_address_budget(settings: Any) -> None:
    settings.LOGIN_FAILURE_LIMIT_IP = 3
    users = [UserFactory() for _ in range(5)]

    for user in users:  # an office behind one address
        assert post_login(user.username, DEFAULT_PASSWORD).status_code == 200


def test_forwarded_for_is_used_only_behind_trusted_proxies(user: Any, settings: Any) -> None:
    settings.LOGIN_FAILURE_LIMIT_IP = 3
    proxy = {"REMOTE_ADDR": "10.0.0.1"}

    # No trusted proxy: a client cannot dodge the limit by inventing X-Forwarded-For values.
    for n in range(3):
        post_login(f"someone{n}", "guess", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}", **proxy)
    assert_throttled(
        post_login(user.username, DEFAULT_PASSWORD, HTTP_X_FORWARDED_FOR="192.0.2.99", **proxy),
        settings.LOGIN_FAILURE_WINDOW,
    )

    # One trusted proxy: the clients behind it are told apart, forged entries to the left ignored.
    settings.TRUSTED_PROXY_COUNT = 1
    for n in range(3):
        post_login(f"other{n}", "guess", HTTP_X_FORWARDED_FOR=f"1.2.3.{n}, 192.0.2.50", **proxy)
    assert_throttled(
        post_login(user.username, DEFAULT_PASSWORD, HTTP_X_FORWARDED_FOR="9.9.9.9, 192.0.2.50", **proxy),
        settings.LOGIN_FAILURE_WINDOW,
    )
    assert (
        post_login(user.username, DEFAULT_PASSWORD, HTTP_X_FORWARDED_FOR="192.0.2.51", **proxy).status_code
        == 200
    )


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (0, "1.1.1.1", "10.0.0.1"),
        (1, "1.1.1.1", "1.1.1.1"),
        (1, "6.6.6.6, 1.1.1.1", "1.1.1.1"),
        (2, "6.6.6.6, 1.1.1.1, 172.16.0.5", "1.1.1.1"),
        (2, "1.1.1.1", "10.0.0.1"),  # fewer entries than proxies: not through them
        (1, "not-an-ip", "10.0.0.1"),
        (1, "", "10.0.0.1"),
    ],
)
def test_client_ip(proxies: int, forwarded: str, expected: str, settings: Any) -> None:
    settings.TRUSTED_PROXY_COUNT = proxies
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=forwarded)

    assert client_ip(request) == expected


def test_ipv6_clients_are_counted_per_64() -> None:
    assert ip_bucket("2001:db8:1:2:aaaa::1") == ip_bucket("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert ip_bucket("::ffff:192.0.2.1") == "192.0.2.1"


FAIL_LOGINS = """
import os
from accounts.services import InvalidCredentials, login_attempt
for _ in range(int(ARGS[1])):
    try:
        login_attempt(identifier=ARGS[0], password="guess", ip="192.0.2.77")
    except InvalidCredentials:
        pass
result = {"pid": os.getpid()}
"""


@requires_redis
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_failures_in_another_process_count_here(settings: Any) -> None:
    user = UserFactory()

    run_in_other_process(FAIL_LOGINS, user.username, str(settings.LOGIN_FAILURE_LIMIT_ACCOUNT))

    assert_throttled(
        post_login(user.username, DEFAULT_PASSWORD, REMOTE_ADDR="192.0.2.77"), settings.LOGIN_FAILURE_WINDOW
    )
