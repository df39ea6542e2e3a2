"""Rows per shard, and moving rows to their home shard after SHARD_COUNT changes.

A row's home is ``shard_for_user(its user id)`` under the current ``SHARD_DATABASES``. After a
change of the shard count most homes change (``md5 % N`` is not ``md5 % M``), so the rows of
the affected users must move. ``rebalance`` walks each source database user by user (in
user-id order, a batch of users at a time, using the model's ``(user_id, …)`` index) and, for
every user whose home is elsewhere, copies their rows to the home shard and then deletes them
from the source, a batch of rows at a time. The copy keeps primary keys and ignores rows that
are already there, so a run that stopped half-way is finished by running it again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from django.db import connections, models, transaction
from django.db.models import Count

from .aliases import PRIMARY, shard_aliases
from .sharding import shard_for_user, shard_key

USER_BATCH = 500

Progress = Callable[["SourceProgress"], None]


@dataclass
class SourceProgress:
    model: str
    source: str
    total: int
    checked: int = 0
    to_move: int = 0
    moved: int = 0
    done: bool = False


@dataclass
class RebalanceReport:
    dry_run: bool
    # (model label, source alias, destination alias) -> rows
    moves: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    # Rows in the sources before the run (moved rows are read again in their new shard).
    rows: int = 0
    checked: int = 0
    moved: int = 0

    @property
    def to_move(self) -> int:
        return sum(self.moves.values())


def has_table(alias: str, model: type[models.Model]) -> bool:
    connection = connections[alias]
    with connection.cursor() as cursor:
        return model._meta.db_table in connection.introspection.table_names(cursor)


def source_aliases(model: type[models.Model], extra: list[str] | None = None) -> list[str]:
    """Every database that may hold rows of ``model``: the shards, the primary when it is not
    a shard (rows from the one-database layout), and ``extra`` (retired shards)."""
    candidates = [*shard_aliases(), PRIMARY, *(extra or [])]
    seen: list[str] = []
    for alias in candidates:
        if alias not in seen and has_table(alias, model):
            seen.append(alias)
    return seen


def _key(model: type[models.Model]) -> str:
    key = shard_key(model)
    if key is None:
        raise TypeError(f"{model._meta.label} is not a sharded model")
    return key


def users_in(
    alias: str, model: type[models.Model], batch: int = USER_BATCH
) -> Iterator[list[tuple[str, int]]]:
    """(user id, rows) of every user with rows in ``alias``, in user-id order, a batch at a time."""
    key = _key(model)
    last: str | None = None
    while True:
        queryset = (
            model._default_manager.using(alias)
            .order_by()
            .values_list(key)
            .annotate(rows=Count("pk"))
            .order_by(key)
        )
        if last is not None:
            queryset = queryset.filter(**{f"{key}__gt": last})
        chunk = [(str(user), int(rows)) for user, rows in queryset[:batch]]
        if not chunk:
            return
        yield chunk
        last = chunk[-1][0]


def rows_per_alias(model: type[models.Model], aliases: list[str]) -> dict[str, int]:
    return {alias: model._default_manager.using(alias).order_by().count() for alias in aliases}


def misplaced_rows(model: type[models.Model], alias: str) -> int:
    """Rows in ``alias`` whose home is another shard."""
    return sum(
        rows for chunk in users_in(alias, model) for user, rows in chunk if shard_for_user(user) != alias
    )


def move_user(
    model: type[models.Model], user_id: str, source: str, destination: str, *, batch: int = 1000
) -> int:
    """Copies a user's rows to ``destination``, then deletes them from ``source``."""
    key = _key(model)
    manager = model._default_manager
    moved = 0
    while True:
        rows = list(manager.using(source).filter(**{key: user_id}).order_by("pk")[:batch])
        if not rows:
            return moved
        with transaction.atomic(using=destination):
            manager.using(destination).bulk_create(rows, ignore_conflicts=True)
        with transaction.atomic(using=source):
            manager.using(source).filter(pk__in=[row.pk for row in rows]).delete()
        moved += len(rows)


def rebalance(
    model: type[models.Model],
    *,
    dry_run: bool,
    sources: list[str] | None = None,
    batch: int = 1000,
    progress: Progress | None = None,
) -> RebalanceReport:
    """Moves (or, with ``dry_run``, counts) the rows of ``model`` that are not at home."""
    report = RebalanceReport(dry_run=dry_run)
    label = model._meta.label
    sources = sources if sources is not None else source_aliases(model)
    report.rows = sum(rows_per_alias(model, sources).values())
    for source in sources:
        state = SourceProgress(
            model=label, source=source, total=model._default_manager.using(source).order_by().count()
        )
        for chunk in users_in(source, model):
            for user_id, rows in chunk:
                home = shard_for_user(user_id)
                if home != source:
                    report.moves[(label, source, home)] += rows
                    state.to_move += rows
                    if not dry_run:
                        state.moved += move_user(model, user_id, source, home, batch=batch)
                state.checked += rows
            if progress is not None:
                progress(state)
        state.done = True
        if progress is not None:
            progress(state)
        report.checked += state.checked
        report.moved += state.moved
    return report
