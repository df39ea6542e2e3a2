"""Writes of accounts: registration, login, tokens, profile changes.

Every write that changes what a token check must answer (revocation, a user change) updates
the "tokens" cache after its commit, so a rolled-back write never touches it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from videoplatform.db import pin_user
from videoplatform.db.routing import new_token_pin_key, pin_new_client
from videoplatform.errors import DomainError

from . import hashers, notifications, throttling, token_cache
from .authentication import AUTHENTICATE_HEADER
from .backends import credentials_check
from .models import AuthToken, User
from .selectors import (
    PRIMARY,
    user_get_for_login,
    user_identity_taken,
    user_profile_cache_refresh,
    user_token_digests,
)

TAKEN_MESSAGES = {
    "username": "A user with that username already exists.",
    "email": "A user with that email address already exists.",
}
_CONSTRAINT_FIELDS = {
    "accounts_user_username_ci_unique": "username",
    "accounts_user_email_ci_unique": "email",
    "accounts_user_username_key": "username",
}


class InvalidCredentials(DomainError):
    status_code = 401
    code = "invalid_credentials"
    default_message = "Invalid username, email or password."

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": AUTHENTICATE_HEADER}


@dataclass(frozen=True)
class IssuedToken:
    """A new bearer token; the only time its clear text exists."""

    token: str
    expires_at: datetime
    user: User


def _taken_error(fields: Iterable[str]) -> ValidationError:
    return ValidationError({field: [TAKEN_MESSAGES[field]] for field in sorted(fields)})


def user_register(
    *,
    username: str,
    email: str,
    password: str,
    display_name: str = "",
    show_adult_content: bool = False,
) -> User:
    """Creates an account; raises ValidationError naming the field that is taken or too weak."""
    email = User.objects.normalize_email(email) or ""
    user = User(
        username=username,
        email=email,
        display_name=display_name,
        show_adult_content=show_adult_content,
    )
    errors: dict[str, list[str]] = {}
    taken = user_identity_taken(username=username, email=email)
    for name in taken:
        errors[name] = [TAKEN_MESSAGES[name]]
    try:
        validate_password(password, user=user)
    except DjangoValidationError as exc:
        errors["password"] = list(exc.messages)
    if errors:
        raise ValidationError(errors)

    user.set_password(password)
    try:
        with transaction.atomic():
            user.save(force_insert=True)
            notifications.email_welcome(user=user)  # sent after the commit
            # The new account's first reads (with a token it has not used yet) see its own row.
            transaction.on_commit(lambda: pin_user(user.pk))
    except IntegrityError as exc:  # a concurrent registration took the name or address
        constraint = getattr(getattr(exc.__cause__, "diag", None), "constraint_name", None)
        clashing = _CONSTRAINT_FIELDS.get(str(constraint))
        if clashing is None:
            raise
        raise _taken_error([clashing]) from exc
    return user


def token_issue(*, user: User, user_agent: str = "", ip_address: str | None = None) -> IssuedToken:
    """Creates a bearer token for ``user``; only its SHA-256 digest is stored."""
    token = token_cache.TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires_at = timezone.now() + timedelta(seconds=settings.AUTH_TOKEN_TTL)
    AuthToken.objects.create(
        digest=token_cache.token_digest(token),
        user=user,
        expires_at=expires_at,
        user_agent=user_agent[:255],
        ip_address=ip_address or None,
    )
    # Not cached here: the first request reads the row, so a user change racing with this
    # login can never leave a snapshot older than the change (see token_cache). Pinned to the
    # commit that creates it: its first lookups read a replica only once it has replayed it.
    pin_new_client(new_token_pin_key(token))
    return IssuedToken(token=token, expires_at=expires_at, user=user)


def token_revoke(*, digest: str) -> None:
    """Revokes one token, in every process at once."""
    tokens_revoke(digests=[digest])


def tokens_revoke(*, digests: Iterable[str]) -> int:
    """Revokes tokens by digest; the number of tokens that existed."""
    wanted = list(digests)
    deleted, _ = AuthToken.objects.filter(digest__in=wanted).delete()
    transaction.on_commit(lambda: token_cache.mark_revoked(wanted))
    return deleted


def user_tokens_revoke(*, user_ids: Iterable[str]) -> int:
    """Revokes every token of these users (password reset, account deletion, "log out everywhere")."""
    wanted = list(user_ids)
    user_profile_cache_refresh(user_ids=wanted)  # deactivations and deletions come through here
    return tokens_revoke(digests=user_token_digests(user_ids=wanted, include_expired=True))


def user_snapshots_invalidate(*, user_ids: Iterable[str]) -> None:
    """After a change to these users, their tokens' cached snapshots are refreshed from the database.

    Call it from every write to a user outside this module (the admin does). The tokens are
    listed after the commit, so a token issued during the change is listed or reads the new row.
    """
    wanted = list(user_ids)
    transaction.on_commit(lambda: token_cache.mark_stale(user_token_digests(user_ids=wanted)))
    user_profile_cache_refresh(user_ids=wanted)


def token_purge_expired() -> int:
    """Deletes expired token rows; their cache entries have lapsed with them."""
    deleted, _ = AuthToken.objects.filter(expires_at__lte=timezone.now()).delete()
    return deleted


def login_attempt(*, identifier: str, password: str, ip: str, user_agent: str = "") -> IssuedToken:
    """Checks a username-or-email and password and issues a token.

    Raises Throttled when the address, the account from this address, or the account from
    everywhere (for an address the owner has not used lately) has failed too often, and
    InvalidCredentials (the same for an unknown account and a wrong password) otherwise.
    """
    hashers.refuse_in_burst()
    throttling.login_attempt_ip(ip=ip)
    user = user_get_for_login(identifier=identifier)
    account = throttling.account_key(user_id=user.pk if user else None, identifier=identifier)
    throttling.login_attempt_account(account=account, ip=ip)
    try:
        with hashers.sheddable():
            checked = credentials_check(user, password)
    except hashers.HashingBusy:
        throttling.login_not_checked(ip=ip, account=account)
        raise
    if not checked:
        raise InvalidCredentials()
    assert user is not None
    throttling.login_succeeded(ip=ip, account=account)
    with transaction.atomic():
        user.last_login = timezone.now()
        user.save(update_fields=["last_login"])
        return token_issue(user=user, user_agent=user_agent, ip_address=ip)


def user_update(
    *,
    user: User,
    display_name: str | None = None,
    show_adult_content: bool | None = None,
) -> User:
    """Changes a user's profile; the returned instance is read from the primary."""
    with transaction.atomic():
        fresh = User.objects.using(PRIMARY).select_for_update().get(pk=user.pk)
        changed: list[str] = []
        if display_name is not None and display_name != fresh.display_name:
            fresh.display_name = display_name
            changed.append("display_name")
        if show_adult_content is not None and show_adult_content != fresh.show_adult_content:
            fresh.show_adult_content = show_adult_content
            changed.append("show_adult_content")
        if changed:
            fresh.save(update_fields=changed)
            user_snapshots_invalidate(user_ids=[fresh.pk])
    return fresh


def users_deactivate(*, user_ids: Iterable[str]) -> int:
    """Deactivates users and revokes their tokens; the number of users changed."""
    wanted = list(user_ids)
    with transaction.atomic():
        count = User.objects.filter(pk__in=wanted, is_active=True).update(is_active=False)
        user_tokens_revoke(user_ids=wanted)
    return count


def user_delete(*, user: User) -> None:
    """Deletes an account; its tokens (deleted with it) stop working in every process at once."""
    with transaction.atomic():
        user_tokens_revoke(user_ids=[user.pk])
        User.objects.using(PRIMARY).filter(pk=user.pk).delete()


def user_password_set(*, user: User, password: str) -> None:
    """Sets a new password and revokes every token of the user: whoever held one must log in again."""
    with transaction.atomic():
        fresh = User.objects.using(PRIMARY).select_for_update().get(pk=user.pk)
        fresh.set_password(password)
        fresh.save(update_fields=["password"])
        user_tokens_revoke(user_ids=[fresh.pk])
