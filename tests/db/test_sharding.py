"""User-id sharding: rows land in the database the source's function names, and the
management commands report and move them after SHARD_COUNT changes."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.db import connections

from streaming.models import WatchEvent
from tests.db.support import REPO_ROOT, SHARDS, connect
from tests.factories import VideoFactory
from tests.support.processes import base_env
from videoplatform.db import ShardedQuerySet, ShardKeyRequired, for_user, shard_for_user, shard_index
from videoplatform.db.router import DataLayerRouter

pytestmark = [pytest.mark.services, pytest.mark.django_db(databases=["default", *SHARDS])]

# user id, first 8 hex digits of md5(user id), shard of 4, shard of 2 (computed independently).
PLACEMENT = [
    ("usr_0001", "5ba09ceb", 3, 1),
    ("usr_0002", "a32a67f3", 3, 1),
    ("usr_0003", "d071a44c", 0, 0),
    ("usr_0004", "3940de80", 0, 0),
    ("usr_0005", "28319164", 0, 0),
    ("usr_0006", "260f2fba", 2, 0),
    ("usr_0007", "b3d20099", 1, 1),
    ("usr_0008", "8e0a1119", 1, 1),
    ("usr_alice", "da642f16", 2, 0),
    ("usr_bob", "f0547310", 0, 0),
    ("usr_3q2YkM9xQzT1", "7648fe2a", 2, 0),
    ("42", "a1d0c6e8", 0, 0),
]


def _rows_by_user(alias: str) -> dict[str, int]:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT user_id, count(*) FROM streaming_watchevent GROUP BY user_id")
        return dict(cursor.fetchall())


@pytest.mark.parametrize(("user_id", "prefix", "of_four", "of_two"), PLACEMENT)
def test_shard_index_is_the_sources_function(user_id, prefix, of_four, of_two):
    assert int(prefix, 16) % 4 == of_four  # the table itself is consistent
    assert shard_index(user_id, 4) == of_four
    assert shard_index(user_id, 2) == of_two


def test_watch_events_land_in_the_shard_the_function_names(data_layer):
    for user_id, _, _, _ in PLACEMENT:
        WatchEvent(user_id=user_id, video_id="vid_saved").save()  # the router reads user_id
        for_user(WatchEvent, user_id).create(user_id=user_id, video_id="vid_created")

    for index, alias in enumerate(SHARDS):
        expected = {user_id: 2 for user_id, _, shard, _ in PLACEMENT if shard == index}
        assert _rows_by_user(alias) == expected
    assert _rows_by_user("default") == {}  # with shards configured, none on the primary


def test_each_users_history_is_read_from_their_shard(data_layer):
    for user_id, _, _, _ in PLACEMENT:
        for video in ("vid_a", "vid_b"):
            WatchEvent(user_id=user_id, video_id=video).save()

    for user_id, _, shard, _ in PLACEMENT:
        history = for_user(WatchEvent, user_id).order_by("video_id")
        assert history.db == f"shard{shard}" == shard_for_user(user_id)
        assert [event.video_id for event in history] == ["vid_a", "vid_b"]
        event = history.first()
        event.position_seconds = 42.0
        event.save()  # a loaded row is saved back to its own shard
        assert for_user(WatchEvent, user_id).filter(position_seconds=42.0).count() == 1


def test_a_query_that_names_no_user_is_refused(data_layer):
    with pytest.raises(ShardKeyRequired, match="for_user"):
        list(WatchEvent.objects.all())
    with pytest.raises(ShardKeyRequired):
        list(WatchEvent.objects.filter(video_id="vid_x"))  # names a video, not a user


def test_the_sharded_queryset_finds_shards_by_itself(data_layer):
    events = ShardedQuerySet(model=WatchEvent)
    events.create(user_id="usr_alice", video_id="vid_1")
    events.bulk_create([WatchEvent(user_id=user_id, video_id="vid_2") for user_id, _, _, _ in PLACEMENT])

    assert events.filter(user_id="usr_alice").db == "shard2"
    assert events.filter(user_id="usr_alice").count() == 2
    assert events.for_user("usr_0001").count() == 1
    assert sum(len(_rows_by_user(alias)) for alias in SHARDS) == len(PLACEMENT)


def test_relations_never_cross_a_shard(data_layer):
    router = DataLayerRouter()
    first = for_user(WatchEvent, "usr_0003").create(user_id="usr_0003", video_id="vid_1")  # shard0
    same_shard = for_user(WatchEvent, "usr_0004").create(user_id="usr_0004", video_id="vid_1")  # shard0
    other_shard = for_user(WatchEvent, "usr_0001").create(user_id="usr_0001", video_id="vid_1")  # shard3
    video = VideoFactory()

    assert router.allow_relation(first, same_shard) is True
    assert router.allow_relation(first, other_shard) is False
    assert router.allow_relation(first, video) is False
    assert router.allow_relation(video, VideoFactory()) is True


# --- the management commands ----------------------------------------------------------------


def _place_as_if_two_shards() -> None:
    """Rows written while SHARD_COUNT was 2: shard0 and shard1 hold everything."""
    for user_id, _, _, of_two in PLACEMENT:
        for video in ("vid_a", "vid_b", "vid_c"):
            WatchEvent.objects.using(f"shard{of_two}").create(user_id=user_id, video_id=video)


def _report(*args: str) -> str:
    out = io.StringIO()
    call_command("shard_rows", *args, stdout=out)
    return out.getvalue()


def _rebalance(*args: str) -> str:
    out = io.StringIO()
    call_command("shard_rebalance", *args, stdout=out)
    return out.getvalue()


def _line(report: str, alias: str) -> list[str]:
    return next(line.split() for line in report.splitlines() if line.split()[1:2] == [alias])


def test_shard_rows_reports_rows_and_misplaced_rows_per_database(data_layer):
    _place_as_if_two_shards()
    report = _report("--misplaced")

    # 12 users x 3 rows, written with 2 shards; with 4, users whose md5 % 4 is 2 or 3 are elsewhere.
    assert "SHARD_COUNT = 4" in report
    assert _line(report, "shard0")[2:] == [str(3 * 8), str(3 * 3)]  # usr_0006, usr_alice, usr_3q2…
    assert _line(report, "shard1")[2:] == [str(3 * 4), str(3 * 2)]  # usr_0001, usr_0002
    assert _line(report, "shard2")[2:] == ["0", "0"]
    assert _line(report, "total")[2:] == [str(3 * 12), str(3 * 5)]


def test_rebalance_dry_run_changes_nothing_then_moves_rows_home(data_layer):
    _place_as_if_two_shards()
    before = {alias: _rows_by_user(alias) for alias in SHARDS}

    dry = _rebalance("--dry-run")
    assert "dry run" in dry
    assert "streaming.WatchEvent: shard0 -> shard2: 9 rows would move" in dry
    assert "streaming.WatchEvent: shard1 -> shard3: 6 rows would move" in dry
    assert "100% streaming.WatchEvent shard0: 24/24 rows checked, 9 to move, 0 moved (done)" in dry
    assert {alias: _rows_by_user(alias) for alias in SHARDS} == before

    moved = _rebalance("--batch", "2")
    assert "streaming.WatchEvent: 36 rows in 5 databases, 15 moved" in moved
    for index, alias in enumerate(SHARDS):
        assert _rows_by_user(alias) == {user: 3 for user, _, shard, _ in PLACEMENT if shard == index}
    assert "0 moved" in _rebalance()  # a second run has nothing left to do


def test_rebalance_drains_the_primary_after_leaving_the_one_shard_layout(data_layer):
    for user_id, _, _, _ in PLACEMENT:
        WatchEvent.objects.using("default").create(user_id=user_id, video_id="vid_old")

    _rebalance()

    assert _rows_by_user("default") == {}
    for index, alias in enumerate(SHARDS):
        assert _rows_by_user(alias) == {user: 1 for user, _, shard, _ in PLACEMENT if shard == index}


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_rebalance_drains_a_retired_shard_given_by_url(data_layer):
    """The operator's command line: shards from DATABASE_SHARD_URLS, the old shard by URL."""
    primary = data_layer.primary
    server = f"postgres://{primary['USER']}:{primary['PASSWORD']}@{primary['HOST']}:{primary['PORT']}"
    retired = f"{data_layer.test_database}_retired"
    with connections["default"].schema_editor(collect_sql=True) as editor:
        editor.create_model(WatchEvent)
    with connect(primary, dbname="postgres") as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{retired}"')
        conn.execute(f'CREATE DATABASE "{retired}"')
    try:
        with connect(primary, dbname=retired) as conn:
            for statement in editor.collected_sql:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO streaming_watchevent (id, user_id, video_id, started_at, position_seconds)"
                " VALUES ('wev_retired', 'usr_0001', 'vid_kept', now(), 0)"
            )
        shard_urls = ",".join(f"{server}/{connections[alias].settings_dict['NAME']}" for alias in SHARDS)
        env = base_env(
            DJANGO_SETTINGS_MODULE="settings.test",
            DATABASE_URL=f"{server}/{data_layer.test_database}",
            DATABASE_SHARD_URLS=shard_urls,
        )
        result = subprocess.run(
            [sys.executable, "manage.py", "shard_rebalance", "--from-url", f"{server}/{retired}"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert "retired0 -> shard3: 1 rows moved" in result.stdout
        assert [event.video_id for event in for_user(WatchEvent, "usr_0001")] == ["vid_kept"]
        with connect(primary, dbname=retired) as conn:
            assert conn.execute("SELECT count(*) FROM streaming_watchevent").fetchone()[0] == 0
    finally:
        with connect(primary, dbname="postgres") as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{retired}" WITH (FORCE)')


def test_rebalance_refuses_a_bad_batch_size(data_layer):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--batch"):
        _rebalance("--batch", "0")
