"""Moves the rows of sharded models to their home shard after SHARD_COUNT changes.

    manage.py shard_rebalance --dry-run      # what would move, from where to where
    manage.py shard_rebalance                # move it, with progress
    manage.py shard_rebalance --from-url postgres://…/old_shard4   # also drain a retired shard

Sources are the shards, the primary when it is not a shard (rows written while the primary was
the only shard), and every --from-url. docs/data-layer.md explains what moves and why.
"""

from __future__ import annotations

from typing import Any

import dj_database_url
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from videoplatform.db import rebalance
from videoplatform.db.aliases import add_database, remove_database
from videoplatform.db.sharding import sharded_models

BAR_WIDTH = 30


class Command(BaseCommand):
    help = "Moves sharded rows to their home shard under the current SHARD_COUNT (see --dry-run)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Count what would move; change nothing.")
        parser.add_argument(
            "--from-url",
            action="append",
            default=[],
            metavar="URL",
            help="A database that is no longer a shard but still holds rows (repeatable).",
        )
        parser.add_argument(
            "--batch", type=int, default=1000, help="Rows copied and deleted per transaction (default 1000)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch"] < 1:
            raise CommandError("--batch must be at least 1")
        retired = [f"retired{index}" for index in range(len(options["from_url"]))]
        for alias, url in zip(retired, options["from_url"], strict=True):
            try:
                add_database(alias, dict(dj_database_url.parse(url)))
            except ValueError as exc:
                raise CommandError(f"--from-url {url!r}: {exc}") from exc
        self._tty = hasattr(self.stdout, "isatty") and self.stdout.isatty()
        self._last_step: dict[tuple[str, str], int] = {}
        dry_run = options["dry_run"]
        verb = "would move" if dry_run else "moved"
        self.stdout.write(
            f"SHARD_COUNT = {settings.SHARD_COUNT}: {', '.join(settings.SHARD_DATABASES)}"
            + (" (dry run: nothing changes)" if dry_run else "")
        )
        try:
            for model in sharded_models():
                sources = rebalance.source_aliases(model, extra=retired)
                report = rebalance.rebalance(
                    model, dry_run=dry_run, sources=sources, batch=options["batch"], progress=self._progress
                )
                for (label, source, destination), rows in sorted(report.moves.items()):
                    self.stdout.write(f"{label}: {source} -> {destination}: {rows} rows {verb}")
                self.stdout.write(
                    self.style.SUCCESS(
                        f"{model._meta.label}: {report.rows} rows in {len(sources)} databases, "
                        f"{report.to_move if dry_run else report.moved} {verb}"
                    )
                )
        finally:
            for alias in retired:
                remove_database(alias)

    def _progress(self, state: rebalance.SourceProgress) -> None:
        share = 1.0 if state.total == 0 else min(1.0, state.checked / state.total)
        text = (
            f"{state.model} {state.source}: {state.checked}/{state.total} rows checked, "
            f"{state.to_move} to move, {state.moved} moved"
        )
        if self._tty:
            filled = int(share * BAR_WIDTH)
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            self.stdout.write(f"\r[{bar}] {share:4.0%} {text}", ending="\n" if state.done else "")
            self.stdout.flush()
            return
        step = int(share * 10)  # a line per 10 % step, and one when the source is done
        key = (state.model, state.source)
        if state.done or (step < 10 and step > self._last_step.get(key, -1)):
            self._last_step[key] = step
            self.stdout.write(f"{share:4.0%} {text}" + (" (done)" if state.done else ""))
