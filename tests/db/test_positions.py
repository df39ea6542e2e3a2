"""WAL positions against the real standby: when a commit is visible there, the page-boundary
quirk, a position read before COMMIT, and forgetting positions when a replica changes."""

from __future__ import annotations

import pytest
from django.db import connections, transaction

from tests.db.support import REPLICA, REPLICA_PORT, REPLICATED, connect, replay_paused, wait_for_replay
from tests.factories import VideoFactory
from tests.support.processes import wait_until
from videoplatform.db.lsn import UNKNOWN, commit_position, insert_position, normalise
from videoplatform.db.replicas import monitor
from videoplatform.db.routing import read_alias, routing_context
from videos.models import Video

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True, databases=REPLICATED)]

PAGE = 8192


def _on_standby(layer, video_id: str) -> str | None:
    return layer.replica_sees("SELECT title FROM videos_video WHERE id = %s", (video_id,))


def test_a_commit_is_visible_on_the_replica_once_it_replayed_the_commit_position(data_layer):
    videos = [VideoFactory(title="v0") for _ in range(3)]
    wait_for_replay(data_layer)
    monitor.check(REPLICA)

    with replay_paused(data_layer):
        Video.objects.filter(pk=videos[0].pk).update(title="v1")
        position = commit_position()
        assert 0 < position < UNKNOWN
        assert not monitor.reached(REPLICA, position)  # a probe: the paused replica is behind
        assert _on_standby(data_layer, videos[0].pk) == "v0"

    assert wait_until(lambda: monitor.reached(REPLICA, position), timeout=30)
    assert _on_standby(data_layer, videos[0].pk) == "v1"

    # Many commits, each checked the moment the replica reaches its position: never missing.
    missing = 0
    for round_ in range(2, 42):
        video = videos[round_ % len(videos)]
        Video.objects.filter(pk=video.pk).update(title=f"v{round_}")
        position = commit_position()
        assert wait_until(lambda: monitor.reached(REPLICA, position), timeout=30, interval=0.0005)
        missing += _on_standby(data_layer, video.pk) != f"v{round_}"
    assert missing == 0


def test_positions_right_after_a_page_header_are_normalised():
    segment = 16 * 1024 * 1024
    assert normalise(5 * PAGE + 24) == 5 * PAGE  # the record ended on the page boundary
    assert normalise(3 * segment + 40) == 3 * segment  # ... on a segment boundary (long header)
    assert normalise(5 * PAGE + 32) == 5 * PAGE + 32
    assert normalise(5 * PAGE) == 5 * PAGE
    assert normalise(3 * segment + 24) == 3 * segment + 24  # no short header at a segment start


def _commit_ending_on_a_page_boundary(layer, video_id: str) -> tuple[int, int] | None:
    """Commits an update whose commit record ends exactly on a WAL page boundary: (the raw
    insert position after it, the boundary), or None if other writers got in the way."""
    with connect(layer.primary) as conn:
        with conn.transaction():
            conn.execute("UPDATE videos_video SET title = 'measure' WHERE id = %s", (video_id,))
            before = int(conn.execute("SELECT pg_current_wal_insert_lsn() - '0/0'").fetchone()[0])
        after = int(conn.execute("SELECT pg_current_wal_insert_lsn() - '0/0'").fetchone()[0])
        commit_size = after - before
        if commit_size <= 0 or commit_size > 200:
            return None
        with conn.transaction():
            conn.execute("UPDATE videos_video SET title = 'boundary' WHERE id = %s", (video_id,))
            here = int(conn.execute("SELECT pg_current_wal_insert_lsn() - '0/0'").fetchone()[0])
            room = PAGE - here % PAGE - commit_size
            # A non-transactional message of the right size leaves exactly the commit's room.
            overhead = 24 + 5 + 24 + 2  # record header, data header, message header, prefix
            size = room - overhead
            if size < 300:
                size += PAGE - 24
            conn.execute("SELECT pg_logical_emit_message(false, 'p', repeat('x', %s))", (size,))
        raw = int(conn.execute("SELECT pg_current_wal_insert_lsn() - '0/0'").fetchone()[0])
    if raw % PAGE != 24:
        return None
    return raw, raw - 24


def test_a_commit_ending_on_a_page_boundary_is_reached_without_more_wal(data_layer):
    video = VideoFactory()
    found = None
    for _ in range(100):
        found = _commit_ending_on_a_page_boundary(data_layer, video.pk)
        if found is not None:
            break
    assert found is not None, "could not place a commit on a page boundary"
    raw, boundary = found
    # The raw insert position is a page header past the commit's end; the normalised one is not.
    assert normalise(raw) == boundary
    assert insert_position() >= boundary
    # The standby reports the boundary itself once it replayed the commit, and the row is there.
    assert wait_until(
        lambda: data_layer.standby_sql(f"SELECT pg_last_wal_replay_lsn() - '0/0' >= {boundary}"), timeout=30
    )
    assert monitor.reached(REPLICA, boundary)
    assert _on_standby(data_layer, video.pk) == "boundary"


def test_a_position_read_before_commit_is_insufficient_and_refused(data_layer):
    video = VideoFactory(title="Before")
    wait_for_replay(data_layer)
    with connect(data_layer.primary) as writer:
        writer.execute("BEGIN")
        writer.execute("UPDATE videos_video SET title = 'Uncommitted' WHERE id = %s", (video.pk,))
        inside = int(writer.execute("SELECT pg_current_wal_insert_lsn() - '0/0'").fetchone()[0])
        # Other work moves WAL on; the replica replays past the position read inside the
        # transaction, and still cannot show the write: its commit record is yet to come.
        with connect(data_layer.primary) as other:
            other.execute("SELECT pg_logical_emit_message(false, 'p', 'move on')")
        assert wait_until(lambda: monitor.reached(REPLICA, inside), timeout=30)
        assert _on_standby(data_layer, video.pk) == "Before"
        writer.execute("COMMIT")
    position = commit_position()
    assert position > inside
    assert wait_until(lambda: monitor.reached(REPLICA, position), timeout=30)
    assert _on_standby(data_layer, video.pk) == "Uncommitted"

    # The data layer never hands out a position inside a transaction: "unknown", the primary.
    with transaction.atomic():
        Video.objects.filter(pk=video.pk).update(title="Inside")
        assert commit_position() == UNKNOWN
    assert commit_position() < UNKNOWN


def test_a_replica_that_turns_out_promoted_loses_its_positions(data_layer):
    """A promotion, simulated without touching the shared standby: the replica's alias is
    pointed at a server that is not in recovery (the primary itself)."""
    VideoFactory()
    wait_for_replay(data_layer)
    assert monitor.check(REPLICA).in_rotation
    known = monitor.known(REPLICA)
    assert known > 0
    assert monitor.reached(REPLICA, known)

    replica = connections[REPLICA]
    replica.close()
    monitor._drop_connection(REPLICA)
    replica.settings_dict["PORT"] = data_layer.primary["PORT"] or "5432"
    try:
        state = monitor.check(REPLICA)
        assert not state.in_rotation and "promoted" in state.reason
        assert monitor.known(REPLICA) == 0
        assert not monitor.reached(REPLICA, known)
        with routing_context(client_keys={"t:promoted"}):
            assert read_alias() == ("default", "replicas_unavailable")
    finally:
        replica.close()
        monitor._drop_connection(REPLICA)
        replica.settings_dict["PORT"] = str(REPLICA_PORT)
    assert monitor.check(REPLICA).in_rotation


def test_a_timeline_change_forgets_known_positions(data_layer):
    """What the monitor does when a replica reports another timeline (after a failover it
    follows the new primary): the positions it learnt on the old one are no proof any more."""
    wait_for_replay(data_layer)
    assert monitor.check(REPLICA).in_rotation
    timeline = monitor._timelines.get(REPLICA)
    known = monitor.known(REPLICA)
    assert timeline is not None and known > 0
    monitor._observe(REPLICA, None, timeline + 1)  # as a check on the new timeline would report
    assert monitor.known(REPLICA) == 0
    monitor._observe(REPLICA, known - 1, timeline + 1)
    assert monitor.known(REPLICA) == known - 1  # learnt again, on the new timeline
