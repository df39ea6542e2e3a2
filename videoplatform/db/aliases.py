"""The database aliases of the data layer, and adding or removing one while running.

``default`` is the primary (maybe through PgBouncer), ``direct`` the same database without the
pooler, ``replica1``… the read replicas, ``shard0``… the shards of per-user data.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connections

PRIMARY = "default"
DIRECT = "direct"


def direct_alias() -> str:
    """The unpooled alias of the primary: ``direct`` when configured, else ``default``."""
    return DIRECT if DIRECT in settings.DATABASES else PRIMARY


def replica_aliases() -> list[str]:
    return list(settings.REPLICA_DATABASES)


def shard_aliases() -> list[str]:
    return list(settings.SHARD_DATABASES)


def primary_aliases() -> frozenset[str]:
    """Aliases that reach the primary database itself (pooled or not)."""
    return frozenset({PRIMARY, DIRECT})


def add_database(alias: str, config: dict[str, Any]) -> None:
    """Makes ``alias`` usable by ``connections[alias]`` in this process (with Django's defaults)."""
    # configure_settings() insists on a "default" entry; only the new alias's defaults are kept.
    complete = connections.configure_settings({PRIMARY: {}, alias: dict(config)})[alias]
    settings.DATABASES[alias] = complete
    connections.settings[alias] = complete


def remove_database(alias: str) -> None:
    """Closes this thread's connection to ``alias`` and forgets the alias."""
    if alias in connections.settings:
        connections[alias].close()
        del connections[alias]
        del connections.settings[alias]
    settings.DATABASES.pop(alias, None)
