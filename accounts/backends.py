"""Log in with a username or an email address, both case-insensitive.

The admin login goes through this backend; the API login (services.login_attempt) looks the
account up itself, to throttle it, and then checks the password with ``credentials_check``.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest

from .models import User
from .selectors import user_get_for_login


def credentials_check(user: User | None, password: str) -> bool:
    """Whether ``password`` is this active user's; a stale hash is upgraded on success.

    Takes as long for no user as for a real one, so timing does not reveal which accounts exist.
    """
    if user is None:
        User().set_password(password)
        return False
    # check_password re-hashes with the preferred hasher (and saves) when the stored hash is
    # of another algorithm or cost.
    return user.check_password(password) and user.is_active


class UsernameOrEmailBackend(ModelBackend):
    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> User | None:
        if username is None or password is None:
            return None
        user = user_get_for_login(identifier=username)
        return user if credentials_check(user, password) else None
