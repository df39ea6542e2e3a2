"""Login and registration throttles, counted in the shared "default" cache (Redis).

Fixed windows: the first attempt creates a counter that lives LOGIN_FAILURE_WINDOW seconds and
later attempts increment it atomically (INCRBY keeps the TTL); a successful login takes its
attempt back, so the counters hold failures (and attempts in flight). Every process and pod
shares them. If Redis is unreachable they count nothing: logins stay possible, unthrottled.

An account is counted per client address (a few guesses from one address lock that address out
of that account only), and across addresses with a much higher limit that, once reached, stops
only addresses the account has not logged in from recently: nobody can lock the owner out from
elsewhere, and a guess spread over many addresses is still bounded.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from rest_framework.exceptions import Throttled

from videoplatform.api.throttling import client_ip, ip_bucket

__all__ = ["client_ip", "ip_bucket"]


@dataclass(frozen=True)
class Window:
    key: str
    limit: int
    seconds: int


def _cache() -> BaseCache:
    return caches["default"]


def _login_ip_window(ip: str) -> Window:
    return Window(
        f"auth:login-fail:ip:{ip_bucket(ip)}", settings.LOGIN_FAILURE_LIMIT_IP, settings.LOGIN_FAILURE_WINDOW
    )


def _login_account_window(account: str, ip: str) -> Window:
    return Window(
        f"auth:login-fail:acct:{account}:ip:{ip_bucket(ip)}",
        settings.LOGIN_FAILURE_LIMIT_ACCOUNT,
        settings.LOGIN_FAILURE_WINDOW,
    )


def _login_account_global_window(account: str) -> Window:
    return Window(
        f"auth:login-fail:acct:{account}",
        settings.LOGIN_FAILURE_LIMIT_ACCOUNT_GLOBAL,
        settings.LOGIN_FAILURE_WINDOW,
    )


def _known_address_key(account: str, ip: str) -> str:
    return f"auth:login-known:{account}:{ip_bucket(ip)}"


def account_key(*, user_id: str | None, identifier: str) -> str:
    """An existing account is counted by id, whichever of its username or email is typed.

    Unknown names are counted by name (hashed: they are arbitrary user input), so the answer
    for an unknown account is the same as for a real one.
    """
    if user_id is not None:
        return user_id
    return "name:" + hashlib.sha256(identifier.strip().lower().encode()).hexdigest()[:32]


def _hit(window: Window) -> int:
    """Counts one attempt; the count after it (0 when Redis is unreachable)."""
    cache = _cache()
    if cache.add(window.key, 1, timeout=window.seconds):
        return 1
    try:
        value = cache.incr(window.key)
    except ValueError:  # the window ended between add() and incr()
        cache.add(window.key, 1, timeout=window.seconds)
        return 1
    return int(value) if isinstance(value, int) else 0


def _unhit(window: Window) -> None:
    with contextlib.suppress(ValueError):  # the window has ended already
        _cache().decr(window.key)


def _retry_after(window: Window) -> int:
    ttl = getattr(_cache(), "ttl", None)  # django-redis; other backends: the whole window
    remaining = ttl(window.key) if callable(ttl) else None
    if not isinstance(remaining, int) or remaining <= 0:
        remaining = window.seconds
    return max(1, min(remaining, window.seconds))


def _throttled(window: Window, message: str) -> Throttled:
    wait = _retry_after(window)
    return Throttled(wait=wait, detail=f"{message} Try again in {wait} seconds.")


def _take(window: Window, message: str) -> None:
    # Counting before the password is checked, not after a failure, is what makes the limit
    # hold against many parallel attempts: each one takes a slot atomically.
    if _hit(window) > window.limit:
        raise _throttled(window, message)


def login_attempt_ip(*, ip: str) -> None:
    """Counts a login attempt from this address; raises Throttled over the limit."""
    _take(_login_ip_window(ip), "Too many failed logins from this address.")


def login_attempt_account(*, account: str, ip: str) -> None:
    """Counts a login attempt on this account from this address; raises Throttled over a limit.

    Two windows: the account from this address (LOGIN_FAILURE_LIMIT_ACCOUNT), which locks out
    only this address, and the account from everywhere (LOGIN_FAILURE_LIMIT_ACCOUNT_GLOBAL),
    which, once full, refuses only addresses the account has not logged in from within
    LOGIN_KNOWN_ADDRESS_TTL: the owner's usual address keeps its own per-address budget.
    """
    _take(_login_account_window(account, ip), "Too many failed logins for this account from this address.")
    everywhere = _login_account_global_window(account)
    if _hit(everywhere) > everywhere.limit and not _cache().get(_known_address_key(account, ip)):
        raise _throttled(everywhere, "Too many failed logins for this account.")


def login_succeeded(*, ip: str, account: str) -> None:
    """A success resets the account's count from this address, gives back its slot in the
    account's and the address's windows, and marks the address as one the owner uses."""
    cache = _cache()
    cache.delete(_login_account_window(account, ip).key)
    _unhit(_login_account_global_window(account))
    _unhit(_login_ip_window(ip))
    cache.set(_known_address_key(account, ip), 1, timeout=settings.LOGIN_KNOWN_ADDRESS_TTL)


def login_not_checked(*, ip: str, account: str) -> None:
    """A login shed before its password was checked (``hashers.HashingBusy``) gives back the
    slots its attempt took: the client is told to retry, and a retry must not lock it out."""
    _unhit(_login_ip_window(ip))
    _unhit(_login_account_window(account, ip))
    _unhit(_login_account_global_window(account))


def registration_attempt(*, ip: str) -> None:
    """Counts a registration attempt from this address; raises Throttled over the limit."""
    window = Window(
        f"auth:register:ip:{ip_bucket(ip)}", settings.REGISTRATION_LIMIT_IP, settings.REGISTRATION_WINDOW
    )
    _take(window, "Too many registrations from this address.")
