"""Rebuild every video's search document (after a change of text configuration, a restore, or
lost indexing jobs), with a progress bar.

    manage.py rebuild_search_index [--batch-size 500]

Safe while the site runs: each batch is one statement that rewrites the documents of its
videos from their current rows.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from videoplatform.cache.ops import Progress
from videos.models import Video
from videos.search import full_text_available, search_index_rebuild


class Command(BaseCommand):
    help = "Rebuild the full-text search document of every video (PostgreSQL), with a progress bar."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=500, help="Videos per statement (default 500).")

    def handle(self, *args: Any, **options: Any) -> None:
        batch_size = options["batch_size"]
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        if not full_text_available():
            self.stdout.write(
                "No search index to build: the database is not PostgreSQL (search matches text directly)."
            )
            return
        progress = Progress("videos", Video.objects.count(), self.stdout)
        if progress.total == 0:
            progress.advance(0)
        done = search_index_rebuild(batch_size=batch_size, on_batch=progress.advance)
        self.stdout.write(self.style.SUCCESS(f"Indexed {done} videos."))
