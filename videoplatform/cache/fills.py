"""Where a cache fill reads: a replica that has replayed the scope's invalidations, else the primary.

An entry filled from a replica that has not replayed the last write to its scope would keep the
old row for the entry's whole TTL. Every invalidation therefore records, with the scope's
generation, the commit position of the write that caused it (``remote.generation_position``),
and a kind's epoch bump records one for the kind. The tiers read the generation with every L2
lookup anyway, so the position costs nothing more; a loader called by the tiers runs inside
``filling(position)``, and reads with ``.using(fill_alias())``: a replica in rotation that has
replayed the position (known in this process, or one short probe), else the primary.

Outside a fill (the write-through ``refresh`` right after a commit, a scope that is not cached,
L2 unavailable) ``fill_alias()`` is the primary, as it always was.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from videoplatform.db.aliases import PRIMARY
from videoplatform.db.routing import fill_route
from videoplatform.metrics import DB_READS_ROUTED, labelled


@dataclass
class _Fill:
    position: int
    alias: str | None = None


_fill: ContextVar[_Fill | None] = ContextVar("videoplatform_cache_fill", default=None)


@contextmanager
def filling(position: int) -> Iterator[None]:
    """The loader called inside the block fills entries that need WAL ``position``."""
    token = _fill.set(_Fill(position))
    try:
        yield
    finally:
        _fill.reset(token)


def fill_alias() -> str:
    """The alias a loader reads from (decided once per fill, on its first query)."""
    fill = _fill.get()
    if fill is None:
        return PRIMARY
    if fill.alias is None:
        fill.alias, reason = fill_route(fill.position)
        labelled(DB_READS_ROUTED, fill.alias, reason).inc()
    return fill.alias
