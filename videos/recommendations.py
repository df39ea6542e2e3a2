"""Related videos: computed by the ``recommendation`` queue, stored per video, read in one lookup.

- **Co-watch** first: viewers who watched this video in the last RECOMMENDATIONS_WINDOW_DAYS
  and also watched another; a pair counts when at least RECOMMENDATIONS_MIN_COWATCHERS viewers
  share it, scored by cosine similarity (co-viewers / sqrt(viewers of one x viewers of the
  other)) so that merely popular videos do not crowd out the related ones. Watch history lives
  in the user-sharded databases: it is read shard by shard, one user's recent history at a
  time (at most RECOMMENDATIONS_HISTORY_PER_USER videos), and never joined with the catalogue.
- **Similarity** fills the rest up to RECOMMENDATIONS_PER_VIDEO: shared tags and title words
  (Dice coefficients, 0.6 tags + 0.4 title), with candidates found through the full-text
  index on PostgreSQL (any tag or title word) and among recent videos on SQLite.

Only public, ready videos are recommended; reads filter the stored list again with the
viewer's visibility rules (a video made private since is never shown) and cache it.
"""

from __future__ import annotations

import logging
import math
import operator
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import reduce
from itertools import groupby
from typing import Any

from django.conf import settings
from django.contrib.postgres.search import SearchQuery, SearchRank
from django.core.cache import cache
from django.db import IntegrityError, router, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from accounts.types import Viewer
from videoplatform.api.pagination import PageParams
from videoplatform.db.aliases import shard_aliases
from videoplatform.jobs.enqueue import enqueue_on_commit

from .models import RelatedVideos, Video
from .search import full_text_available
from .selectors import video_visible_q

logger = logging.getLogger(__name__)

COWATCH = "cowatch"
SIMILAR = "similar"
SIMILAR_CANDIDATES = 200
SQLITE_CANDIDATES = 2000
MISSING_RETRY_SECONDS = 60
_WORD = re.compile(r"[^\W_]{3,}")
_STOP_WORDS = frozenset(
    {
        "the",
        "and",
        "for",
        "with",
        "from",
        "this",
        "that",
        "your",
        "you",
        "are",
        "was",
        "were",
        "have",
        "has",
        "how",
        "what",
        "why",
        "when",
        "who",
        "into",
        "over",
        "under",
        "about",
        "after",
        "before",
        "our",
        "their",
        "its",
        "not",
        "but",
        "all",
        "can",
        "will",
        "just",
        "more",
        "most",
    }
)


def _cache_key(video_id: str) -> str:
    return f"videos:related:{video_id}"


# --- Co-watch ----------------------------------------------------------------------------------


class CoWatch:
    """Co-watch counts over the recent watch history of every shard."""

    def __init__(self) -> None:
        self.viewers: Counter[str] = Counter()
        self.pairs: dict[str, Counter[str]] = defaultdict(Counter)

    def add_history(self, video_ids: list[str]) -> None:
        """One viewer's recent distinct videos (most recent first)."""
        for video_id in video_ids:
            self.viewers[video_id] += 1
        for first in video_ids:
            counts = self.pairs[first]
            for second in video_ids:
                if second != first:
                    counts[second] += 1

    def related(self, video_id: str, *, min_cowatchers: int) -> list[tuple[str, float, int]]:
        """(video id, cosine score, co-viewers) for pairs with enough co-viewers, best first."""
        mine = self.viewers.get(video_id, 0)
        scored = [
            (other, together / math.sqrt(mine * self.viewers[other]), together)
            for other, together in self.pairs.get(video_id, Counter()).items()
            if together >= min_cowatchers and mine and self.viewers[other]
        ]
        return sorted(scored, key=lambda item: (-item[1], -item[2], item[0]))


def cowatch_collect(*, since: datetime, history_per_user: int) -> CoWatch:
    """Reads every shard's watch history since ``since``, one user at a time."""
    from streaming.models import WatchEvent

    cowatch = CoWatch()
    for alias in shard_aliases():
        rows = (
            WatchEvent.objects.using(alias)
            .filter(started_at__gte=since)
            .order_by("user_id", "-started_at")
            .values_list("user_id", "video_id")
        )
        for _, events in groupby(rows.iterator(chunk_size=5000), key=operator.itemgetter(0)):
            history = list(dict.fromkeys(video_id for _, video_id in events))[:history_per_user]
            if len(history) > 1:
                cowatch.add_history(history)
            elif history:
                cowatch.viewers[history[0]] += 1
    return cowatch


# --- Similarity --------------------------------------------------------------------------------


def _title_words(text: str) -> set[str]:
    return {word for word in _WORD.findall(text.lower()) if word not in _STOP_WORDS}


def _tags(value: Any) -> set[str]:
    return {str(tag).lower() for tag in value} if isinstance(value, list) else set()


def _dice(first: set[str], second: set[str]) -> float:
    if not first or not second:
        return 0.0
    return 2 * len(first & second) / (len(first) + len(second))


def _recommendable() -> QuerySet[Video]:
    return Video.objects.filter(privacy=Video.Privacy.PUBLIC, status=Video.Status.READY)


def similar_videos(*, video: Video, exclude: set[str], limit: int) -> list[tuple[str, float]]:
    """(video id, similarity) of public, ready videos sharing tags or title words, best first."""
    if limit <= 0:
        return []
    tags, words = _tags(video.tags), _title_words(video.title)
    terms = sorted(tags | words)
    candidates = _recommendable().exclude(pk__in=exclude | {video.pk})
    if not terms:
        return []
    if full_text_available(router.db_for_read(Video)):
        query = reduce(
            operator.or_,
            [
                SearchQuery(term, search_type="plain", config=settings.SEARCH_TEXT_CONFIG)
                for term in terms[:32]
            ],
        )
        rows: Any = (
            candidates.filter(search_document__document=query)
            .annotate(rank=SearchRank(F("search_document__document"), query))
            .order_by("-rank", "-view_count")
            .values_list("pk", "title", "tags", "view_count")[:SIMILAR_CANDIDATES]
        )
    else:
        rows = candidates.order_by("-created_at").values_list("pk", "title", "tags", "view_count")[
            :SQLITE_CANDIDATES
        ]
    scored: list[tuple[str, float, int]] = []
    for pk, title, other_tags, view_count in rows:
        score = 0.6 * _dice(tags, _tags(other_tags)) + 0.4 * _dice(words, _title_words(title))
        if score > 0:
            scored.append((pk, round(score, 4), view_count))
    scored.sort(key=lambda item: (-item[1], -item[2], item[0]))
    return [(pk, score) for pk, score, _ in scored[:limit]]


# --- Computing and storing ---------------------------------------------------------------------


def _store(video_id: str, items: list[dict[str, Any]], cowatchers: int) -> None:
    values = {"items": items, "cowatchers": cowatchers, "computed_at": timezone.now()}
    try:
        with transaction.atomic():
            RelatedVideos.objects.update_or_create(video_id=video_id, defaults=values)
    except IntegrityError:  # created concurrently; ours is as fresh
        RelatedVideos.objects.filter(video_id=video_id).update(**values)
    transaction.on_commit(lambda: cache.delete(_cache_key(video_id)), robust=True)


def related_compute(*, video: Video, cowatch: CoWatch | None = None) -> list[dict[str, Any]]:
    """Computes and stores a video's related videos; returns the stored items.

    With ``cowatch`` (the hourly refresh) the co-watch part is recomputed; without it (the
    video just changed) the stored co-watch part is kept and only the similar part is redone.
    """
    per_video = settings.RECOMMENDATIONS_PER_VIDEO
    items: list[dict[str, Any]] = []
    cowatchers = 0
    if cowatch is not None:
        cowatchers = cowatch.viewers.get(video.pk, 0)
        related = cowatch.related(video.pk, min_cowatchers=settings.RECOMMENDATIONS_MIN_COWATCHERS)
        allowed = set(
            _recommendable().filter(pk__in=[pk for pk, _, _ in related]).values_list("pk", flat=True)
        )
        items = [
            {"video_id": pk, "score": round(score, 4), "source": COWATCH}
            for pk, score, _ in related
            if pk in allowed
        ][:per_video]
    else:
        stored = RelatedVideos.objects.filter(video_id=video.pk).first()
        if stored is not None:
            cowatchers = stored.cowatchers
            items = [item for item in stored.items if item.get("source") == COWATCH][:per_video]
    taken = {item["video_id"] for item in items}
    items += [
        {"video_id": pk, "score": score, "source": SIMILAR}
        for pk, score in similar_videos(video=video, exclude=taken, limit=per_video - len(items))
    ]
    _store(video.pk, items, cowatchers)
    return items


def related_update(*, video_id: str) -> int | None:
    """After a change to a video: its similar videos again. None when the video is gone."""
    video = Video.objects.filter(pk=video_id).only("id", "title", "tags").first()
    if video is None:
        return None
    return len(related_compute(video=video))


def related_refresh(*, now: datetime | None = None, limit: int | None = None) -> dict[str, int]:
    """The hourly job: co-watch from recent history for every watched video, and the similar
    videos of those never computed or computed more than RECOMMENDATIONS_MAX_AGE ago (oldest
    first, at most ``limit``)."""
    now = now or timezone.now()
    limit = settings.RECOMMENDATIONS_REFRESH_BATCH if limit is None else limit
    cowatch = cowatch_collect(
        since=now - timedelta(days=settings.RECOMMENDATIONS_WINDOW_DAYS),
        history_per_user=settings.RECOMMENDATIONS_HISTORY_PER_USER,
    )
    openable = Video.objects.filter(
        privacy__in=[Video.Privacy.PUBLIC, Video.Privacy.UNLISTED], status=Video.Status.READY
    )
    watched = set(openable.filter(pk__in=list(cowatch.pairs)).values_list("pk", flat=True))
    stale_cutoff = now - timedelta(seconds=settings.RECOMMENDATIONS_MAX_AGE)
    stale = list(
        openable.exclude(pk__in=watched)
        .filter(related_videos__isnull=True)
        .order_by("-created_at")
        .values_list("pk", flat=True)[:limit]
    )
    if len(stale) < limit:
        stale += list(
            openable.exclude(pk__in=watched)
            .filter(related_videos__computed_at__lt=stale_cutoff)
            .order_by("related_videos__computed_at")
            .values_list("pk", flat=True)[: limit - len(stale)]
        )
    # Every one of them gets its co-watch part recomputed: a pair that left the window goes.
    for chunk in _chunks([*sorted(watched), *stale], 200):
        for video in Video.objects.filter(pk__in=chunk).only("id", "title", "tags"):
            related_compute(video=video, cowatch=cowatch)
    return {"watched": len(watched), "stale": len(stale)}


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- Reading -------------------------------------------------------------------------------------


def _stored_items(video_id: str) -> list[dict[str, Any]] | None:
    key = _cache_key(video_id)
    items = cache.get(key)
    if items is not None:
        return list(items)
    stored = RelatedVideos.objects.filter(video_id=video_id).values_list("items", flat=True).first()
    if stored is None:
        return None
    cache.set(key, stored, timeout=settings.RECOMMENDATIONS_CACHE_TTL)
    return list(stored)


def related_for_viewer(*, video: Video, viewer: Viewer, params: PageParams) -> tuple[list[Video], int]:
    """A page of the video's related videos that this viewer may see, best first.

    Not computed yet (a new video): the job is queued (once a minute at most) and the list is
    empty for now.
    """
    items = _stored_items(video.pk)
    if items is None:
        if cache.add(f"{_cache_key(video.pk)}:queued", 1, timeout=MISSING_RETRY_SECONDS):
            enqueue_on_commit(
                "videos.tasks.recommend_video", video.pk
            )  # by name: the tasks import this module
        return [], 0
    ids = [str(item["video_id"]) for item in items]
    visible = {
        found.pk: found
        for found in _recommendable().filter(video_visible_q(viewer), pk__in=ids).select_related("owner")
    }
    ordered = [visible[pk] for pk in ids if pk in visible]
    return ordered[params.offset : params.offset + params.limit], len(ordered)
