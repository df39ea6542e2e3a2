"""Invalidate cache entries in every process: some ids of a kind, a whole kind, or everything.

    manage.py invalidate_cache video vid_abc vid_def   # these videos
    manage.py invalidate_cache feed                     # every page of the public feed
    manage.py invalidate_cache --all                    # everything
    manage.py invalidate_cache user --dry-run           # what would go, and how many

Ids go at once from every process's L1 and from L2 (their generation moves on); a kind or
everything moves to a new epoch, which drops every entry of it everywhere, and its L2 entries
are deleted to free their memory.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from videoplatform.cache import KINDS
from videoplatform.cache.kinds import SCOPES
from videoplatform.cache.ops import (
    connected_tiers,
    invalidate_kind,
    invalidate_scopes,
    kind_keys,
    scope_keys,
)


class Command(BaseCommand):
    help = "Invalidate cache entries in every process: ids of a kind, a whole kind, or --all."

    def add_arguments(self, parser: CommandParser) -> None:
        kinds_help = "; ".join(f"{kind}: {what}" for kind, what in SCOPES.items())
        parser.add_argument("kind", nargs="?", choices=KINDS, help="What to invalidate.")
        parser.add_argument("ids", nargs="*", help=f"Scopes of the kind (all of it if none). {kinds_help}.")
        parser.add_argument("--all", action="store_true", help="Every kind.")
        parser.add_argument("--dry-run", action="store_true", help="Print what would go, and change nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        kind, ids, everything, dry_run = options["kind"], options["ids"], options["all"], options["dry_run"]
        if everything == (kind is not None):
            raise CommandError("Name a kind (and optionally ids), or give --all.")
        current = connected_tiers()
        verb = "Would invalidate" if dry_run else "Invalidated"

        if ids:
            assert kind is not None
            if dry_run:
                found = sum(len(scope_keys(current, kind, scope)) for scope in ids)
            else:
                found = invalidate_scopes(current, kind, ids)
            entries = "entry" if found == 1 else "entries"
            self.stdout.write(
                f"{verb} {len(ids)} {kind} id(s): {', '.join(ids)}; {found} L2 {entries}, "
                "and their L1 entries in every process."
            )
            return

        total = 0
        for each in KINDS if everything else [kind]:
            assert each is not None
            count = len(kind_keys(current, each)) if dry_run else invalidate_kind(current, each)
            total += count
            self.stdout.write(f"{verb} every {each} entry: {count} in L2, and all of them in every L1.")
        if everything:
            self.stdout.write(f"{verb} {total} L2 entries in all.")
