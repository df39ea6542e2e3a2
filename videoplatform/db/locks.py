"""Advisory locks on the primary, taken on the unpooled ``direct`` alias.

A session-level advisory lock belongs to a server connection; through PgBouncer in transaction
mode the next statement may run on another one, so the lock would be held by nobody (or by
another client). ``advisory_lock`` therefore uses ``direct`` when it is configured and refuses
to run through the pooler otherwise.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from .aliases import PRIMARY, direct_alias


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for a lock name."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


@contextmanager
def advisory_lock(name: str, *, wait: bool = True) -> Iterator[bool]:
    """Holds the advisory lock ``name`` for the block; yields whether it was acquired.

    ``wait=False`` does not wait for a holder: the block runs with ``False`` instead. On a
    database without advisory locks (the embedded SQLite default: one process) it yields True.
    """
    alias = direct_alias()
    if alias == PRIMARY and settings.DATABASE_POOLED:
        raise ImproperlyConfigured("advisory locks need DATABASE_DIRECT_URL when DATABASE_POOLED is on")
    connection = connections[alias]
    if connection.vendor != "postgresql":
        yield True
        return
    key = lock_key(name)
    with connection.cursor() as cursor:
        if wait:
            cursor.execute("SELECT pg_advisory_lock(%s)", [key])
            acquired = True
        else:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            acquired = bool(cursor.fetchone()[0])
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
