"""Fill the cache ahead of traffic: the plans, the first pages of the public feed, the
most-viewed videos (with their owners' profiles).

    manage.py warm_cache [--feed-pages 3] [--videos 200]

Entries already cached are left as they are; missing ones are read from the primary and stored
in L2, where every process finds them.
"""

from __future__ import annotations

import contextlib
from typing import Any, cast

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.http import Http404

from accounts.types import Viewer
from subscriptions.selectors import free_entitlement, plan_list_active
from videoplatform import cache
from videoplatform.api.pagination import PageParams
from videoplatform.cache.ops import Progress, connected_tiers
from videos.models import Video
from videos.selectors import video_get, video_list_public


class _Operator:
    """A viewer who may see every video, so that warming reads each one whatever its privacy."""

    is_authenticated = True
    is_staff = True
    show_adult_content = True
    pk = None


class _AdultViewer:
    """A signed-in viewer who opted in to adult content: the feed's other variant."""

    is_authenticated = True
    is_staff = False
    show_adult_content = True
    pk = None


class Command(BaseCommand):
    help = "Fill the cache: plans, the first feed pages, the most-viewed videos (with a progress bar)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--feed-pages", type=int, default=3, help="Pages of the public feed (default 3).")
        parser.add_argument("--videos", type=int, default=200, help="Most-viewed videos (default 200).")

    def handle(self, *args: Any, **options: Any) -> None:
        pages, video_count = options["feed_pages"], options["videos"]
        if pages < 0 or video_count < 0:
            raise CommandError("--feed-pages and --videos must be 0 or more.")
        if not cache.active():
            raise CommandError("The cache tiers are off (CACHE_TIERS_ENABLED).")
        current = connected_tiers()
        loads_before = current.stats.loads_total

        plans = Progress("plans", 2, self.stdout)
        plan_list_active()
        plans.advance()
        free_entitlement()
        plans.advance()

        feed = Progress("feed pages", pages * 2, self.stdout)
        limit = settings.API_PAGE_SIZE_DEFAULT
        viewers: tuple[Viewer, ...] = (AnonymousUser(), cast("Viewer", _AdultViewer()))  # stand-ins
        for viewer in viewers:
            for page in range(1, pages + 1):
                video_list_public(viewer=viewer, params=PageParams(page=page, limit=limit))
                feed.advance()

        most_viewed = Video.objects.order_by("-view_count", "-created_at").values_list("pk", flat=True)
        ids = list(most_viewed[:video_count])
        videos = Progress("videos", len(ids), self.stdout)
        for video_id in ids:
            with contextlib.suppress(Http404):  # deleted since it was listed
                video_get(video_id=video_id, viewer=cast("Viewer", _Operator()))
            videos.advance()
        if not ids:
            videos.advance(0)  # draws the empty bar

        current.flush_stats()
        loaded = current.stats.loads_total - loads_before
        self.stdout.write(
            self.style.SUCCESS(
                f"Warmed {2 + pages * 2} plan and feed entries and {len(ids)} videos "
                f"({loaded} read from the database, the rest were cached already)."
            )
        )
