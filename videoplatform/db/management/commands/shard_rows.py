"""Reports the rows of every sharded model in each database (and, with --misplaced, how many
of them belong to another shard under the current SHARD_COUNT)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from videoplatform.db import rebalance
from videoplatform.db.sharding import sharded_models


class Command(BaseCommand):
    help = "Rows of each sharded model per database; --misplaced also counts rows not at home."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--misplaced",
            action="store_true",
            help="Also count the rows whose home is another shard (reads every user id).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"SHARD_COUNT = {settings.SHARD_COUNT}: {', '.join(settings.SHARD_DATABASES)}")
        header = f"{'model':<24} {'database':<12} {'rows':>12}"
        if options["misplaced"]:
            header += f" {'misplaced':>12}"
        for model in sharded_models():
            self.stdout.write(header)
            aliases = rebalance.source_aliases(model)
            counts = rebalance.rows_per_alias(model, aliases)
            total_misplaced = 0
            for alias in aliases:
                line = f"{model._meta.label:<24} {alias:<12} {counts[alias]:>12}"
                if options["misplaced"]:
                    misplaced = rebalance.misplaced_rows(model, alias)
                    total_misplaced += misplaced
                    line += f" {misplaced:>12}"
                self.stdout.write(line)
            total = f"{model._meta.label:<24} {'total':<12} {sum(counts.values()):>12}"
            if options["misplaced"]:
                total += f" {total_misplaced:>12}"
            self.stdout.write(total)
