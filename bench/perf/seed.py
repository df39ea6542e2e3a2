"""A realistic data set, written fast with COPY: users, videos, plans, ready media, tokens.

Idempotent: the database carries a marker (``COMMENT ON DATABASE``) naming what was seeded; a
re-run with the same figures skips seeding, anything else (an interrupted seed, other figures)
empties the tables it writes and seeds again. Ids, tokens and choices are derived from fixed
seeds, so two runs see the same catalogue and the load scripts can name rows without asking.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

SEED_VERSION = 3
# Every seeded user's password. Its hash (Argon2id at the platform's tuned cost) is made once and
# shared by every user, as if all had picked the same password: 10,000 hashes would take minutes.
PASSWORD = "perf-bench password, not a secret"
RENDITIONS = [  # quality, width, height, bandwidth (the source's ladder, 5.2)
    (1080, 1920, 1080, 5_000_000),
    (720, 1280, 720, 2_500_000),
    (480, 854, 480, 1_000_000),
    (360, 640, 360, 500_000),
]
WORDS = [
    "alpine",
    "trail",
    "sunset",
    "city",
    "night",
    "drive",
    "cooking",
    "pasta",
    "guitar",
    "lesson",
    "cat",
    "compilation",
    "drone",
    "ocean",
    "surf",
    "tutorial",
    "python",
    "review",
    "unboxing",
    "camera",
    "travel",
    "vlog",
    "tokyo",
    "street",
    "food",
    "live",
    "concert",
    "piano",
    "chess",
    "opening",
    "workout",
    "morning",
    "routine",
    "garden",
    "tour",
    "retro",
    "games",
    "speedrun",
    "science",
    "explained",
    "space",
    "launch",
    "history",
    "documentary",
    "interview",
    "podcast",
    "highlights",
    "football",
    "basketball",
    "recipe",
    "bread",
]
TABLES = (  # emptied before a fresh seed, children first
    "streaming_watchevent",
    "streaming_rendition",
    "streaming_mediafile",
    "subscriptions_subscription",
    "accounts_authtoken",
    "videos_videosearchdocument",
    "videos_relatedvideos",
    "videos_video",
    "accounts_user",
)


@dataclass(frozen=True)
class SeedSpec:
    users: int = 10_000
    videos: int = 100_000
    token_users: int = 2_000  # users holding a bearer token the load uses
    media: int = 5_000  # videos with a ready HLS ladder (the stream endpoint's sample)
    subscribers: float = 0.3  # share of token users with a paid plan
    adult_viewers: float = 0.05  # share of users who opted in to adult content

    def marker(self) -> str:
        return f"videoplatform perf seed v{SEED_VERSION} " + json.dumps(asdict(self), sort_keys=True)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def make_id(prefix: str, kind: str, n: int) -> str:
    """Ids shaped like the platform's own (prefix and 22 URL-safe characters), but reproducible."""
    return f"{prefix}_{_b64(hashlib.sha256(f'{kind}:{n}'.encode()).digest()[:16])}"


def user_id(n: int) -> str:
    return make_id("usr", "user", n)


def username(n: int) -> str:
    return f"viewer{n:05d}"


def video_id(n: int) -> str:
    return make_id("vid", "video", n)


def token(n: int) -> str:
    """The bearer token of user ``n`` (< token_users), in the platform's format."""
    return "vpt_" + _b64(hashlib.sha256(f"perf-token:{n}".encode()).digest())


@dataclass(frozen=True)
class VideoRow:
    n: int
    owner: int
    privacy: str
    is_adult: bool
    is_premium: bool
    status: str
    created_at: datetime


def plan_videos(spec: SeedSpec, now: datetime) -> list[VideoRow]:
    """Every video's visibility and age, from a fixed seed (the load scripts use the same list)."""
    rng = random.Random(20240601)
    rows = []
    for n in range(spec.videos):
        roll = rng.random()
        privacy = "public" if roll < 0.90 else ("unlisted" if roll < 0.95 else "private")
        status = "ready" if rng.random() < 0.96 else rng.choice(["awaiting_upload", "processing", "failed"])
        rows.append(
            VideoRow(
                n=n,
                owner=int(spec.users * rng.random() ** 2),  # a few prolific channels, many small ones
                privacy=privacy,
                is_adult=rng.random() < 0.03,
                is_premium=rng.random() < 0.10,
                status=status,
                # Newest first = lowest n: the popular head of the catalogue is also recent.
                created_at=now - timedelta(seconds=n * 631 + rng.randrange(600)),
            )
        )
    return rows


def media_videos(spec: SeedSpec, videos: Sequence[VideoRow]) -> list[VideoRow]:
    """The sample with a ready ladder: public or unlisted, ready, not adult (every viewer may open them)."""
    eligible = [v for v in videos if v.status == "ready" and v.privacy != "private" and not v.is_adult]
    return eligible[: spec.media]


def is_subscriber(spec: SeedSpec, n: int) -> bool:
    return n < spec.token_users and (n * 7919) % 1000 < spec.subscribers * 1000


def sees_adult(spec: SeedSpec, n: int) -> bool:
    return (n * 104729) % 1000 < spec.adult_viewers * 1000


def seeded_marker(conninfo: str, database: str) -> str | None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", [database]
        ).fetchone()
    return row[0] if row else None


class Progress:
    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, total, 0
        self.started = time.monotonic()
        self._shown = -1

    def advance(self, count: int = 1) -> None:
        self.done += count
        percent = self.done * 100 // max(self.total, 1)
        finished = self.done >= self.total
        if (percent // 10 != self._shown // 10 and sys.stdout.isatty()) or finished:
            self._shown = percent
            sys.stdout.write(f"\r  {self.label:<28} {self.done:>8,}/{self.total:,} ({percent:3d} %)")
            if finished:
                sys.stdout.write(f"  {time.monotonic() - self.started:5.1f} s\n")
            sys.stdout.flush()


def _copy(
    conn: psycopg.Connection[Any],
    table: str,
    columns: Sequence[str],
    rows: Iterator[Sequence[Any]],
    total: int,
) -> None:
    progress = Progress(table, total)
    with conn.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            progress.advance()
    if progress.done < total:
        progress.advance(total - progress.done)


def seed(conninfo: str, database: str, spec: SeedSpec, *, password_hash: Callable[[str], str]) -> bool:
    """Seeds the database unless its marker says it holds this spec already; True if it seeded."""
    marker = spec.marker()
    if seeded_marker(conninfo, database) == marker:
        print(f"seed: {database} already holds {spec.videos:,} videos and {spec.users:,} users; skipped")
        return False
    started = time.monotonic()
    now = datetime.now(UTC).replace(microsecond=0)
    hashed = password_hash(PASSWORD)
    videos = plan_videos(spec, now)
    media = media_videos(spec, videos)
    rng = random.Random(99)
    with psycopg.connect(conninfo) as conn:
        conn.execute(sql.SQL("COMMENT ON DATABASE {} IS NULL").format(sql.Identifier(database)))
        conn.execute(f"TRUNCATE {', '.join(TABLES)} CASCADE")

        def users() -> Iterator[Sequence[Any]]:
            for n in range(spec.users):
                yield (
                    user_id(n),
                    hashed,
                    False,
                    username(n),
                    "",
                    "",
                    f"{username(n)}@example.com",
                    False,
                    True,
                    now - timedelta(days=n % 700),
                    f"Viewer {n}",
                    sees_adult(spec, n),
                    now - timedelta(days=n % 700),
                )

        _copy(
            conn,
            "accounts_user",
            [
                "id",
                "password",
                "is_superuser",
                "username",
                "first_name",
                "last_name",
                "email",
                "is_staff",
                "is_active",
                "date_joined",
                "display_name",
                "show_adult_content",
                "created_at",
            ],
            users(),
            spec.users,
        )

        def video_rows() -> Iterator[Sequence[Any]]:
            for v in videos:
                words = rng.sample(WORDS, 6)
                title = " ".join(words[:4]).capitalize()
                description = (
                    " ".join(rng.choice(WORDS) for _ in range(rng.randrange(10, 60))).capitalize() + "."
                )
                yield (
                    video_id(v.n),
                    user_id(v.owner),
                    title,
                    description,
                    json.dumps(words[4:]),
                    v.privacy,
                    v.is_adult,
                    v.is_premium,
                    v.status,
                    round(rng.uniform(15, 3600), 3) if v.status == "ready" else None,
                    int(2_000_000 / (v.n + 1) ** 0.9),
                    0,  # access_epoch
                    False,  # is_live
                    v.created_at,
                    v.created_at,
                )

        _copy(
            conn,
            "videos_video",
            [
                "id",
                "owner_id",
                "title",
                "description",
                "tags",
                "privacy",
                "is_adult",
                "is_premium",
                "status",
                "duration",
                "view_count",
                "access_epoch",
                "is_live",
                "created_at",
                "updated_at",
            ],
            video_rows(),
            len(videos),
        )

        def media_rows() -> Iterator[Sequence[Any]]:
            for v in media:
                run = f"run{v.n:06d}"
                prefix = f"media/{video_id(v.n)}/hls/{run}"
                yield (
                    make_id("med", "media", v.n),
                    "ready",
                    100,
                    "",
                    f"uploads/{video_id(v.n)}/source.mp4",
                    50_000_000,
                    "",
                    120.0,
                    1920,
                    1080,
                    30.0,
                    "h264",
                    "aac",
                    5_500_000,
                    prefix,
                    f"{prefix}/poster.jpg",
                    json.dumps([f"{prefix}/thumbs/{i:03d}.jpg" for i in range(12)]),
                    10,
                    1,
                    run,
                    "",
                    None,
                    v.created_at,
                    v.created_at,
                    v.created_at,
                    v.created_at,
                    video_id(v.n),
                    "",  # source_etag
                    "",  # upload_key
                    "mp4",  # container
                )

        _copy(
            conn,
            "streaming_mediafile",
            [
                "id",
                "status",
                "progress",
                "error",
                "source_path",
                "source_size",
                "upload_id",
                "duration",
                "width",
                "height",
                "fps",
                "video_codec",
                "audio_codec",
                "bitrate",
                "output_prefix",
                "poster_path",
                "thumbnail_paths",
                "thumbnail_interval",
                "attempts",
                "run_token",
                "run_holder",
                "heartbeat_at",
                "processing_started_at",
                "ready_at",
                "created_at",
                "updated_at",
                "video_id",
                "source_etag",
                "upload_key",
                "container",
            ],
            media_rows(),
            len(media),
        )

        def rendition_rows() -> Iterator[Sequence[Any]]:
            for v in media:
                prefix = f"media/{video_id(v.n)}/hls/run{v.n:06d}"
                for quality, width, height, bandwidth in RENDITIONS:
                    yield (
                        quality,
                        width,
                        height,
                        bandwidth,
                        "avc1.640028,mp4a.40.2",
                        f"{prefix}/{quality}p/index.m3u8",
                        make_id("med", "media", v.n),
                    )

        _copy(
            conn,
            "streaming_rendition",
            ["quality", "width", "height", "bandwidth", "codecs", "playlist_path", "media_file_id"],
            rendition_rows(),
            len(media) * len(RENDITIONS),
        )

        expires = now + timedelta(days=365)

        def token_rows() -> Iterator[Sequence[Any]]:
            for n in range(spec.token_users):
                yield hashlib.sha256(token(n).encode()).hexdigest(), now, expires, "perf", None, user_id(n)

        _copy(
            conn,
            "accounts_authtoken",
            ["digest", "created_at", "expires_at", "user_agent", "ip_address", "user_id"],
            token_rows(),
            spec.token_users,
        )
        plans = dict(conn.execute("SELECT code, id FROM subscriptions_plan").fetchall())
        paid = [plans[code] for code in ("standard", "premium") if code in plans]
        subscribers = [n for n in range(spec.token_users) if is_subscriber(spec, n)] if paid else []

        def subscription_rows() -> Iterator[Sequence[Any]]:
            for n in subscribers:
                yield (
                    make_id("sub", "subscription", n),
                    "active",
                    now - timedelta(days=3),
                    expires,
                    False,
                    None,
                    None,
                    now,
                    now,
                    paid[n % len(paid)],
                    user_id(n),
                )

        _copy(
            conn,
            "subscriptions_subscription",
            [
                "id",
                "status",
                "current_period_start",
                "current_period_end",
                "cancel_at_period_end",
                "canceled_at",
                "ended_at",
                "created_at",
                "updated_at",
                "plan_id",
                "user_id",
            ],
            subscription_rows(),
            len(subscribers),
        )
        conn.commit()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("ANALYZE")
        conn.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(database), sql.Literal(marker))
        )
    print(f"seed: done in {time.monotonic() - started:.1f} s")
    return True
