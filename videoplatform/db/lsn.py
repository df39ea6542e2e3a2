"""WAL positions (LSNs): what a replica must have replayed for a read to see a commit.

A commit is visible on a hot standby once the standby has replayed the end of its commit record
(``pg_last_wal_replay_lsn()`` is the end of the last record replayed). The primary's
``pg_current_wal_insert_lsn()`` read *after* COMMIT has returned is at or past that end, so it
is a sufficient position for everything committed before it. Read inside the transaction it is
not (the commit record comes later), which is why ``commit_position()`` refuses to answer there.

One quirk: when the last record ends exactly on a WAL page boundary, the insert position is
reported past the next page's header (24 bytes; 40 at a segment start), which a standby never
reports until more WAL arrives. ``normalise`` takes the header off, so an idle primary does not
make a caught-up standby look behind.

Positions are integers here (bytes since 0/0); in Redis and in task headers they are 16 hex
digits (fixed width, so string order is numeric order, also inside Lua scripts).
"""

from __future__ import annotations

import logging
from typing import Final

from django.db import connections

from .aliases import PRIMARY, primary_aliases

logger = logging.getLogger(__name__)

# A position no replica reaches: "read the primary" (a write whose position is unknown).
UNKNOWN: Final = (1 << 64) - 1
SHORT_PAGE_HEADER: Final = 24  # SizeOfXLogShortPHD
LONG_PAGE_HEADER: Final = 40  # SizeOfXLogLongPHD, at the start of each segment

INSERT_POSITION_SQL: Final = (
    "SELECT pg_current_wal_insert_lsn() - '0/0', current_setting('wal_block_size')::int, "
    "pg_size_bytes(current_setting('wal_segment_size'))"
)


def normalise(lsn: int, block_size: int = 8192, segment_size: int = 16 * 1024 * 1024) -> int:
    """The end of the last record when ``lsn`` sits right after a page header, else ``lsn``."""
    if lsn % segment_size == LONG_PAGE_HEADER:
        return lsn - LONG_PAGE_HEADER
    if lsn % block_size == SHORT_PAGE_HEADER and lsn % segment_size != SHORT_PAGE_HEADER:
        return lsn - SHORT_PAGE_HEADER  # (a segment's first page has the long header)
    return lsn


def to_hex(lsn: int) -> str:
    return f"{min(max(lsn, 0), UNKNOWN):016x}"


def from_hex(text: str | bytes | None) -> int | None:
    """An LSN written by ``to_hex`` (None for nothing or something unreadable)."""
    if not text:
        return None
    if isinstance(text, bytes):
        text = text.decode()
    try:
        return int(text, 16)
    except ValueError:
        return None


def to_pg(lsn: int) -> str:
    """PostgreSQL's spelling, ``X/Y``."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def in_primary_transaction() -> bool:
    """Whether this thread has a transaction open on the primary (pooled or direct)."""
    return any(
        connections[alias].in_atomic_block for alias in primary_aliases() if alias in connections.settings
    )


def insert_position(alias: str = PRIMARY) -> int:
    """The primary's WAL insert position now (normalised). Raises on a database error."""
    with connections[alias].cursor() as cursor:
        cursor.execute(INSERT_POSITION_SQL)
        lsn, block_size, segment_size = cursor.fetchone()
    return normalise(int(lsn), int(block_size), int(segment_size))


def commit_position(alias: str = PRIMARY) -> int:
    """A position that covers every transaction committed so far on the primary.

    ``UNKNOWN`` (read the primary) inside a transaction, where the current transaction's own
    commit is still to come, and when the primary does not answer.
    """
    if in_primary_transaction():
        return UNKNOWN
    try:
        return insert_position(alias)
    except Exception as exc:  # noqa: BLE001 - no position: the caller reads the primary instead
        logger.warning("could not read the primary's WAL position: %s", exc)
        return UNKNOWN
