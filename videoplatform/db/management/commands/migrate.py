"""``migrate`` for the data layer: on the unpooled primary, then on every shard.

Without ``--database`` it migrates ``direct`` (the primary without PgBouncer) when
DATABASE_DIRECT_URL is set, else ``default``, and then every shard database: the router lets
only the sharded models onto shards. ``--database ALIAS`` migrates that one database, as
Django's own command does.
"""

from __future__ import annotations

from typing import Any

from django.core.management.commands import migrate

from videoplatform.db.aliases import PRIMARY, direct_alias, shard_aliases


def migration_targets() -> list[str]:
    targets = [direct_alias()]
    targets += [alias for alias in shard_aliases() if alias != PRIMARY and alias not in targets]
    return targets


class Command(migrate.Command):
    help = (
        "Updates database schemas: the primary (through DATABASE_DIRECT_URL when set) and every "
        "shard, or only the database given with --database."
    )

    def add_arguments(self, parser: Any) -> None:
        super().add_arguments(parser)
        parser.set_defaults(database=None)

    def get_check_kwargs(self, options: dict[str, Any]) -> Any:
        kwargs: Any = super(migrate.Command, self).get_check_kwargs(options)
        databases = [options["database"]] if options["database"] else migration_targets()
        return {**kwargs, "databases": databases}

    def handle(self, *args: Any, **options: Any) -> None:
        if options["database"] is not None:
            super().handle(*args, **options)
            return
        targets = migration_targets()
        for alias in targets:
            if options["verbosity"] >= 1 and len(targets) > 1:
                self.stdout.write(self.style.MIGRATE_HEADING(f"Database {alias}:"))
            super().handle(*args, **{**options, "database": alias})
