"""Reads of users and tokens.

User reads here read the primary ("default"): a login must see an account registered a moment
ago. A bearer-token lookup that misses the "tokens" cache reads a replica only when the replica
has replayed everything the answer depends on, by WAL position (docs/data-layer.md, "Token
lookups"): the token's pins (its client's writes; a token just issued is pinned to its commit), the last
revocation or user change (recorded with its commit position), and the position a STALE marker
carries. Anything unknown reads the primary, and so does a token a replica does not know.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import BooleanField, ExpressionWrapper, Q, Value
from django.db.models.functions import Lower
from django.utils import timezone

from videoplatform import cache
from videoplatform.db import PRIMARY
from videoplatform.db.routing import (
    REVOCATIONS_KEY,
    entry_and_pins,
    learn_pin,
    new_token_pin_key,
    revocations_reestablish,
    token_pin_key,
    token_route,
)

from . import token_cache
from .models import AuthToken, User


@dataclass(frozen=True)
class TokenAuth:
    """What ``request.auth`` holds for a bearer-token request."""

    digest: str
    expires_at: datetime


class TokenRejected(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _invalid() -> TokenRejected:
    return TokenRejected("invalid_token", "The token is invalid or has been revoked.")


def _expired() -> TokenRejected:
    return TokenRejected("token_expired", "The token has expired; log in again.")


def _check(*, expires_at: datetime, is_active: bool) -> None:
    if expires_at <= timezone.now():
        raise _expired()
    if not is_active:
        raise _invalid()


def _checked(user: User, auth: TokenAuth) -> tuple[User, TokenAuth]:
    _check(expires_at=auth.expires_at, is_active=user.is_active)
    return user, auth


@dataclass(frozen=True)
class TokenViewer:
    """Who a bearer token belongs to, as far as a shared answer needs to know (see
    ``videoplatform.entry.response_cache``): enough for the throttle and the audience."""

    pk: str
    show_adult_content: bool
    is_authenticated: bool = True


def token_viewer_get(*, token: str) -> TokenViewer | User:
    """``token_user_get``'s checks, answered from the cached snapshot without building a User;
    a token with no snapshot cached goes through ``token_user_get``. Raises TokenRejected."""
    if not token.startswith(token_cache.TOKEN_PREFIX) or len(token) > token_cache.TOKEN_MAX_LENGTH:
        raise _invalid()
    _, entry, _, _ = _cached(token)
    if not token_cache.is_snapshot(entry):
        return token_user_get(token=token)[0]  # markers and misses: the full path decides
    assert isinstance(entry, dict)
    user = entry["user"]
    _check(expires_at=entry["expires_at"], is_active=bool(user["is_active"]))
    return TokenViewer(pk=str(user["id"]), show_adult_content=bool(user["show_adult_content"]))


def token_user_get(*, token: str) -> tuple[User, TokenAuth]:
    """The user a bearer token belongs to; raises TokenRejected.

    Served from the "tokens" cache with no query once cached; on a miss (or when Redis is
    unreachable) one query on the primary, whose answer is cached for the next request.
    """
    if not token.startswith(token_cache.TOKEN_PREFIX) or len(token) > token_cache.TOKEN_MAX_LENGTH:
        raise _invalid()
    digest, entry, required, record_lost = _cached(token)
    if entry == token_cache.REVOKED:
        raise _invalid()
    if entry == token_cache.EXPIRED:
        raise _expired()
    if token_cache.is_snapshot(entry):
        assert isinstance(entry, dict)
        auth = TokenAuth(digest=digest, expires_at=entry["expires_at"])
        return _checked(token_cache.user_from_snapshot(entry["user"]), auth)

    stale = token_cache.stale_position(entry)
    if stale is not None and required is not None:
        required = max(required, stale)
    alias, _ = token_route(required)
    if record_lost:
        revocations_reestablish()  # e.g. Redis restarted: this read is on the primary anyway
    row = _token_row(alias, digest)
    if row is None and alias != PRIMARY:  # a token a replica does not know: the primary decides
        row = _token_row(PRIMARY, digest)
    if row is None:
        token_cache.marker_add(digest=digest, marker=token_cache.REVOKED)
        raise _invalid()
    auth = TokenAuth(digest=digest, expires_at=row.expires_at)
    if row.is_expired:
        token_cache.marker_add(digest=digest, marker=token_cache.EXPIRED)
        raise _expired()
    if entry is None:  # a STALE marker means the user changed a moment ago: do not cache yet
        token_cache.snapshot_add(
            digest=digest, entry=token_cache.snapshot_entry(user=row.user, expires_at=row.expires_at)
        )
    return _checked(row.user, auth)


def _cached(token: str) -> tuple[str, object, int | None, bool]:
    """(digest, the token's "tokens" cache entry, the WAL position a database read of it needs
    (None: unknown), whether the revocation record is missing while Redis answers). One Redis
    round trip for the entry, the token's pin and the revocation record; the pin is kept for
    the request's other decisions (``learn_pin``)."""
    digest = token_cache.token_digest(token)
    snapshot = token_cache.prefetched_snapshot(digest)
    if snapshot is not None:
        # Read in the request's one round trip (``videoplatform.cache.prefetch``): a snapshot
        # needs no database read, so no position; the client's pins, read in that same round
        # trip, are taken from there by the request's other decisions.
        return digest, snapshot, None, False
    pin_key = token_pin_key(token)
    entry, pins = entry_and_pins(
        token_cache.tokens_cache(),
        token_cache.cache_key(digest),
        [pin_key, new_token_pin_key(token), REVOCATIONS_KEY],
    )
    token_cache.entry_known(digest, entry)
    if pins is None:
        return digest, entry, None, False
    pin, issued, revocations = pins
    learn_pin(pin_key, pin or 0)  # the client's own writes: the request's other reads need it too
    if revocations is None:
        return digest, entry, None, True
    return digest, entry, max(pin or 0, issued or 0, revocations), False


def _token_row(alias: str, digest: str) -> AuthToken | None:
    return AuthToken.objects.using(alias).select_related("user").filter(digest=digest).first()


def user_get_for_login(*, identifier: str) -> User | None:
    """The account a login names, by username or email, case-insensitively.

    Compares ``lower(column)`` with ``lower(value)`` so that PostgreSQL uses the unique
    expression indexes of the model (``iexact`` compiles to ``UPPER()`` and would scan).
    """
    wanted = Lower(Value(identifier))
    return (
        User.objects.using(PRIMARY)
        .alias(username_lower=Lower("username"), email_lower=Lower("email"))
        .filter(Q(username_lower=wanted) | Q(email_lower=wanted))
        .order_by("date_joined")
        .first()
    )


def user_identity_taken(*, username: str, email: str) -> set[str]:
    """Which of ``username`` and ``email`` already belong to an account (case-insensitively)."""
    same_username = Q(username_lower=Lower(Value(username)))
    same_email = Q(email_lower=Lower(Value(email)))
    rows = (
        User.objects.using(PRIMARY)
        .alias(username_lower=Lower("username"), email_lower=Lower("email"))
        .filter(same_username | same_email)
        .annotate(
            same_username=ExpressionWrapper(same_username, output_field=BooleanField()),
            same_email=ExpressionWrapper(same_email, output_field=BooleanField()),
        )
        .values_list("same_username", "same_email")[:2]  # the unique indexes allow two at most
    )
    taken: set[str] = set()
    for username_matches, email_matches in rows:
        if username_matches:
            taken.add("username")
        if email_matches:
            taken.add("email")
    return taken


def user_get(*, user_id: str) -> User:
    return User.objects.using(PRIMARY).get(pk=user_id)


def user_token_digests(*, user_ids: list[str], include_expired: bool = False) -> list[str]:
    tokens = AuthToken.objects.using(PRIMARY).filter(user_id__in=user_ids)
    if not include_expired:
        tokens = tokens.filter(expires_at__gt=timezone.now())
    return list(tokens.values_list("digest", flat=True))


# --- Profiles: what other apps show of a user (a video's owner), cached per user ---------------
PROFILE_FIELDS = ("id", "username", "display_name", "is_active", "created_at")


def _profile_rows(user_ids: list[str]) -> dict[str, cache.Snapshot]:
    users = cache.rows_by_pk(User, cache.fill_alias(), user_ids, fields=PROFILE_FIELDS)
    return {user.pk: cache.snapshot(user) for user in users}


def user_profiles_get_many(*, user_ids: Iterable[str]) -> dict[str, User]:
    """Users by id, holding ``PROFILE_FIELDS`` (other fields load on access); unknown ids are
    left out. Served by the cache tiers (TTL ``CACHE_TTL_USER``); at most one query."""
    wanted = [str(user_id) for user_id in dict.fromkeys(user_ids)]
    if not wanted:
        return {}
    if not cache.active():
        users = User.objects.using(PRIMARY).filter(pk__in=wanted).only(*PROFILE_FIELDS)
        return {user.pk: user for user in users}
    rows = cache.fetch_many(cache.USER, wanted, _profile_rows)
    return {user_id: cache.restore(User, row) for user_id, row in rows.items() if row is not None}


def user_profile_get(*, user_id: str) -> User | None:
    """A user's profile (see ``user_profiles_get_many``), or None."""
    return user_profiles_get_many(user_ids=[user_id]).get(user_id)


def user_profile_cache_refresh(*, user_ids: Iterable[str]) -> None:
    """Every write to users calls this (through the services): once the transaction commits,
    their profiles are written through to L2 and dropped from every process's L1."""
    cache.refresh_on_commit(cache.USER, [str(user_id) for user_id in user_ids], _profile_rows)
