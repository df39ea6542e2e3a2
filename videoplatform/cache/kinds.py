"""What the tiers hold: kinds of entry, their scopes and their time to live.

An entry is named by ``(kind, scope, variant)``. The *scope* is the unit of invalidation and of
fencing: one video, one user, one user's subscription, the plan list, the public feed. The
*variant* tells entries of one scope apart (the pages of the feed); most scopes have one entry.
"""

from __future__ import annotations

import re
from typing import Final

from django.conf import settings

USER: Final = "user"
VIDEO: Final = "video"
SUBSCRIPTION: Final = "subscription"
PLAN: Final = "plan"
FEED: Final = "feed"
MEDIA: Final = "media"

KINDS: Final = (USER, VIDEO, SUBSCRIPTION, PLAN, FEED, MEDIA)

# What a scope is, per kind (the operator commands print it).
SCOPES: Final = {
    USER: "a user id (usr_…): the user's profile",
    VIDEO: "a video id (vid_…): the video's row",
    SUBSCRIPTION: "a user id (usr_…): that user's current subscription",
    PLAN: "'active' (the plans on offer) or 'free' (the free plan's limits)",
    FEED: "'public': every page of the public feed",
    MEDIA: "a video id (vid_…): the video's ready HLS ladder (media file and renditions)",
}

# Ids and names the platform makes; anything else (a mistyped URL, a probe for weaknesses) is
# read from the database without being cached, so junk cannot fill the caches.
_CACHEABLE: Final = re.compile(r"[A-Za-z0-9_.:=,*-]{1,200}")


def ttl(kind: str) -> int:
    """Seconds an entry of ``kind`` is fresh (settings ``CACHE_TTL_*``)."""
    return int(settings.CACHE_TTLS[kind])


def cacheable(scope: str, variant: str) -> bool:
    return bool(_CACHEABLE.fullmatch(scope)) and (not variant or bool(_CACHEABLE.fullmatch(variant)))


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"Unknown cache kind {kind!r}; one of: {', '.join(KINDS)}.")
    return kind
