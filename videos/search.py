"""Search over the catalogue.

PostgreSQL: each video has a weighted full-text document (``VideoSearchDocument``: title A,
tags B, description C; a GIN index), rebuilt by the ``indexing`` task after every create,
update and delete (``search_index_update``) and as a whole by ``manage.py rebuild_search_index``.
A query (web-search syntax: words, "phrases", -exclusions, or) is ranked with ``ts_rank``.

The embedded SQLite default has no full-text search: every word must appear in the title, the
tags or the description (case-insensitive), ranked by where it appears.

Either way only public, ready videos are found, adult ones only for viewers who opted in:
private and unlisted videos never appear, not even to their owner.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.postgres.search import SearchQuery, SearchRank
from django.db import connections, router
from django.db.models import Case, F, IntegerField, Q, QuerySet, Value, When
from django.utils import timezone

from accounts.types import Viewer
from videoplatform.api.pagination import PageParams, paginate_queryset

from .models import Video, VideoSearchDocument

_DOCUMENT_SQL = """
INSERT INTO {documents} (video_id, document, indexed_at)
SELECT v.id,
       setweight(to_tsvector(%(config)s::regconfig, coalesce(v.title, '')), 'A')
    || setweight(to_tsvector(%(config)s::regconfig, coalesce(
           (SELECT string_agg(tag, ' ') FROM jsonb_array_elements_text(
               CASE WHEN jsonb_typeof(v.tags::jsonb) = 'array' THEN v.tags::jsonb ELSE '[]'::jsonb END
           ) AS tag), '')), 'B')
    || setweight(to_tsvector(%(config)s::regconfig, coalesce(v.description, '')), 'C'),
       %(now)s
FROM {videos} AS v
WHERE v.id = ANY(%(ids)s)
ON CONFLICT (video_id) DO UPDATE SET document = EXCLUDED.document, indexed_at = EXCLUDED.indexed_at
"""


def full_text_available(alias: str | None = None) -> bool:
    return connections[alias or router.db_for_write(VideoSearchDocument)].vendor == "postgresql"


def search_index_update(*, video_ids: Iterable[str]) -> int:
    """Rebuilds the search documents of these videos from their rows; how many were written.

    Reads the rows as they are now, so running it late, twice or out of order converges on
    the current state. A deleted video's document went with its row.
    """
    ids = sorted(set(video_ids))
    alias = router.db_for_write(VideoSearchDocument)
    if not ids or not full_text_available(alias):
        return 0
    sql = _DOCUMENT_SQL.format(
        documents=connections[alias].ops.quote_name(VideoSearchDocument._meta.db_table),
        videos=connections[alias].ops.quote_name(Video._meta.db_table),
    )
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, {"config": settings.SEARCH_TEXT_CONFIG, "ids": ids, "now": timezone.now()})
        return int(cursor.rowcount)


def search_index_sweep(
    *, settle: timedelta | None = None, batch_size: int = 500, max_batches: int = 20
) -> int:
    """Indexes again the videos whose indexing job was lost; how many documents were written.

    A job can be lost between the commit and the broker (a refused publish is only logged) or
    with a worker killed at the wrong instant (the Redis transport pops a message before it
    records it as unacknowledged). Looked for: videos with no document, or one older than the
    row's last change, unchanged for ``settle`` (``SEARCH_SWEEP_SETTLE``) so jobs still in
    flight are left alone. At most ``max_batches`` x ``batch_size`` per run.
    """
    if not full_text_available():
        return 0
    if settle is None:
        settle = timedelta(seconds=settings.SEARCH_SWEEP_SETTLE)
    cutoff = timezone.now() - settle
    alias = router.db_for_write(VideoSearchDocument)
    done = 0
    for _ in range(max_batches):
        ids = list(
            Video.objects.using(alias)
            .filter(updated_at__lt=cutoff)
            .filter(Q(search_document__isnull=True) | Q(search_document__indexed_at__lt=F("updated_at")))
            .order_by("pk")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            break
        done += search_index_update(video_ids=ids)
        if len(ids) < batch_size:
            break
    return done


def search_index_rebuild(*, batch_size: int = 500, on_batch: Callable[[int], None] | None = None) -> int:
    """Rebuilds every video's document, in batches by id; ``on_batch(n)`` after each batch."""
    if not full_text_available():
        return 0
    done = 0
    last = ""
    while True:
        ids = list(
            Video.objects.using(router.db_for_write(Video))
            .filter(pk__gt=last)
            .order_by("pk")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            return done
        search_index_update(video_ids=ids)
        done += len(ids)
        last = ids[-1]
        if on_batch is not None:
            on_batch(len(ids))


def _sees_adult(viewer: Viewer) -> bool:
    return bool(viewer.is_authenticated and viewer.show_adult_content)


def searchable(viewer: Viewer) -> QuerySet[Video]:
    """What search may return to this viewer: public, ready videos (adult ones if opted in)."""
    queryset = Video.objects.filter(privacy=Video.Privacy.PUBLIC, status=Video.Status.READY)
    if not _sees_adult(viewer):
        queryset = queryset.filter(is_adult=False)
    return queryset


def _words(query: str) -> list[str]:
    return list(dict.fromkeys(word for word in query.lower().split() if word))[:10]


def _substring_search(queryset: QuerySet[Video], query: str) -> QuerySet[Video]:
    words = _words(query)
    rank: Any = Value(0)
    for word in words:
        queryset = queryset.filter(
            Q(title__icontains=word) | Q(tags__icontains=word) | Q(description__icontains=word)
        )
        rank = rank + Case(
            When(title__icontains=word, then=Value(4)),
            When(tags__icontains=word, then=Value(2)),
            default=Value(1),
            output_field=IntegerField(),
        )
    return queryset.annotate(rank=rank).order_by("-rank", "-view_count", "-created_at", "-id")


def video_search(*, viewer: Viewer, query: str, params: PageParams) -> tuple[list[Video], int]:
    """Videos matching ``query`` that the viewer may find, best match first."""
    queryset = searchable(viewer).select_related("owner")
    if full_text_available(router.db_for_read(Video)):
        ts_query = SearchQuery(query, search_type="websearch", config=settings.SEARCH_TEXT_CONFIG)
        queryset = (
            queryset.filter(search_document__document=ts_query)
            .annotate(rank=SearchRank(F("search_document__document"), ts_query))
            .order_by("-rank", "-view_count", "-created_at", "-id")
        )
    else:
        queryset = _substring_search(queryset, query)
    return paginate_queryset(queryset, params)
