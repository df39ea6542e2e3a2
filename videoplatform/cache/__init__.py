"""The cache tiers: L1 in each process, L2 in Redis or a Redis Cluster, then the database.

Selectors read through ``fetch`` (after checking ``active()``); services call
``refresh_on_commit`` / ``invalidate_on_commit`` after their writes. ``snapshot`` and
``restore`` turn model rows into the plain data the tiers hold. docs/caching.md has the design.
This package imports no app.
"""

from .core import active, fetch, fetch_many, invalidate_on_commit, refresh_on_commit, reset, tiers
from .fills import fill_alias
from .kinds import FEED, KINDS, PLAN, SUBSCRIPTION, USER, VIDEO
from .loads import rows_by_pk
from .snapshots import Snapshot, restore, snapshot

__all__ = [
    "FEED",
    "KINDS",
    "PLAN",
    "SUBSCRIPTION",
    "USER",
    "VIDEO",
    "Snapshot",
    "active",
    "fetch",
    "fetch_many",
    "fill_alias",
    "invalidate_on_commit",
    "refresh_on_commit",
    "reset",
    "restore",
    "rows_by_pk",
    "snapshot",
    "tiers",
]
