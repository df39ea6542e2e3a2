"""Bearer-token entries in the shared "tokens" cache: what lets a token check skip the database.

One key per token digest, holding one of:
- a snapshot of the token's user and expiry: the check needs no query;
- ``REVOKED``: the token was revoked or never existed: 401 with no query;
- ``EXPIRED``: 401 with no query;
- ``STALE`` (``stale:<position>``): the user changed a moment ago, in a commit at that WAL
  position: read the database (a replica that has replayed it, else the primary) and do not cache.

Readers only ever ``add`` (SET NX) an entry after a database read; writers ``set`` markers after
their commit. So a reader that read the row just before a revocation or a user change cannot
overwrite the writer's marker with what it read. There is no in-process layer: every process
sees a revocation at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Final

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.utils import timezone

from videoplatform.cache import prefetch
from videoplatform.db.lsn import UNKNOWN, from_hex, to_hex
from videoplatform.db.routing import current_commit_position, revocation_recorded

from .models import User

TOKEN_PREFIX: Final = "vpt_"  # noqa: S105 - a prefix, not a secret
# "vpt_" and token_urlsafe(32) make 47 characters; anything much longer is not one of ours.
TOKEN_MAX_LENGTH: Final = 100

REVOKED: Final = "revoked"
EXPIRED: Final = "expired"
STALE: Final = "stale"
# Markers that only guard against a reader that is caching what it read just before a write
# (milliseconds); a reader stalled for longer than this could still cache a stale snapshot.
FENCE_TTL: Final = 60
# Unknown tokens are remembered briefly so that a client retrying a bad token costs no query.
UNKNOWN_TOKEN_TTL: Final = 60

# Bump when the snapshot's fields change, so entries written by the previous release are ignored.
SNAPSHOT_VERSION: Final = 1
SNAPSHOT_FIELDS: Final = (
    "id",
    "username",
    "email",
    "display_name",
    "show_adult_content",
    "is_staff",
    "is_superuser",
    "is_active",
    "created_at",
)
# Model.from_db takes the loaded values in the model's field order.
_SNAPSHOT_ATTNAMES: Final = [f.attname for f in User._meta.concrete_fields if f.attname in SNAPSHOT_FIELDS]


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


TOKENS_ALIAS: Final = "tokens"


def tokens_cache() -> BaseCache:
    return caches[TOKENS_ALIAS]


def cache_key(digest: str) -> str:
    return f"tok:{digest}"


TOKEN_USER_HINT: Final = prefetch.TOKEN_USER


def prefetched_snapshot(digest: str) -> dict[str, Any] | None:
    """The token's snapshot if the request's one round trip read it (``videoplatform.cache.
    prefetch``), else None (a marker, a miss, or not prefetched: the caller reads the entry
    with the positions a database read of the token needs)."""
    found, value = prefetch.take_raw(TOKENS_ALIAS, cache_key(digest))
    if not found or not is_snapshot(value):
        return None
    entry_known(digest, value)
    return value  # type: ignore[no-any-return]


def entry_known(digest: str, entry: Any) -> None:
    """Notes an entry the request has read: later readers in the request take it from there
    (``prefetch.remember``), and a snapshot teaches this process the token's user (a hint)."""
    prefetch.remember(TOKENS_ALIAS, cache_key(digest), entry)
    if is_snapshot(entry):
        prefetch.hint(TOKEN_USER_HINT, digest, str(entry["user"]["id"]))


def snapshot_entry(*, user: User, expires_at: datetime) -> dict[str, Any]:
    return {
        "v": SNAPSHOT_VERSION,
        "expires_at": expires_at,
        "user": {name: getattr(user, name) for name in SNAPSHOT_FIELDS},
    }


def is_snapshot(entry: object) -> bool:
    return isinstance(entry, dict) and entry.get("v") == SNAPSHOT_VERSION


def user_from_snapshot(snapshot: dict[str, Any]) -> User:
    """A persisted User built without a query; fields not in the snapshot load on first access.

    Being an ordinary model instance with deferred fields, a later ``save()`` writes only the
    loaded fields, and reading, say, ``password`` costs one query instead of a wrong default.
    """
    return User.from_db("default", _SNAPSHOT_ATTNAMES, [snapshot[name] for name in _SNAPSHOT_ATTNAMES])


def snapshot_add(*, digest: str, entry: dict[str, Any]) -> None:
    """Cache a snapshot read from the database, unless a writer's marker is already there."""
    remaining = int((entry["expires_at"] - timezone.now()).total_seconds())
    timeout = min(settings.AUTH_TOKEN_CACHE_TTL, remaining)
    if timeout > 0:
        tokens_cache().add(cache_key(digest), entry, timeout=timeout)


def marker_add(*, digest: str, marker: str) -> None:
    """Remember briefly that a token is unknown or expired, unless a writer got there first."""
    tokens_cache().add(cache_key(digest), marker, timeout=UNKNOWN_TOKEN_TTL)


def mark_revoked(digests: Iterable[str]) -> None:
    """After the commit that revoked these tokens: refused with no query from now on, and the
    revocation's commit position recorded, so that a lookup that misses the cache (the marker
    evicted or lost) reads only a replica that has replayed it."""
    # Kept for as long as a snapshot may live, so it also outlives any stray snapshot write.
    entries = dict.fromkeys((cache_key(d) for d in digests), REVOKED)
    if entries:
        tokens_cache().set_many(entries, timeout=settings.AUTH_TOKEN_CACHE_TTL)
        revocation_recorded()


def mark_stale(digests: Iterable[str]) -> None:
    """After the commit that changed these tokens' user: lookups read the database, on a
    replica that has replayed the change (its commit position is in the marker), else the
    primary, and do not cache what they read until the fence lapses."""
    wanted = list(digests)
    if not wanted:
        return
    position = current_commit_position()
    marker = STALE if position >= UNKNOWN else f"{STALE}:{to_hex(position)}"
    tokens_cache().set_many(dict.fromkeys((cache_key(d) for d in wanted), marker), timeout=FENCE_TTL)
    revocation_recorded(position)


def stale_position(entry: object) -> int | None:
    """The position a STALE marker asks a database read to reflect (``UNKNOWN``: the primary);
    None for any other entry."""
    if not isinstance(entry, str) or not entry.startswith(STALE):
        return None
    _, sep, lsn = entry.partition(":")
    position = from_hex(lsn) if sep else None
    return UNKNOWN if position is None else position
