"""The resources events are about: whose they are and how the API shows them.

An event's ``data`` is the resource as its API endpoint renders it (the same serializer), read
again inside the publishing transaction so that it shows the state the event announces. A
resource without an entry here sends no webhooks. ``live.*`` events are about a live session
(one broadcast); their ``data`` is its live stream as ``GET /api/live/{id}`` shows it to the owner
(never the stream key, which is only shown once).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import models


@dataclass(frozen=True)
class ResourceKind:
    name: str  # "video": the payload's resource type
    owner_field: str  # the attribute holding the owner's id ("stream.owner_id": through a relation)
    render: Callable[[models.Model], dict[str, Any]]

    def owner_id(self, resource: models.Model) -> str:
        value: Any = resource
        for name in self.owner_field.split("."):
            value = getattr(value, name)
        return str(value)


def _render_video(video: models.Model) -> dict[str, Any]:
    from videos.api.serializers import VideoSerializer
    from videos.models import Video

    fresh = Video.objects.select_related("owner").filter(pk=video.pk).first()
    return dict(VideoSerializer(fresh if fresh is not None else video).data)


def _render_subscription(subscription: models.Model) -> dict[str, Any]:
    from subscriptions.api.serializers import SubscriptionSerializer
    from subscriptions.models import Subscription

    fresh = Subscription.objects.select_related("plan").filter(pk=subscription.pk).first()
    return dict(SubscriptionSerializer(fresh if fresh is not None else subscription).data)


def _render_live_session(session: models.Model) -> dict[str, Any]:
    from streaming.live.api.serializers import live_representation
    from streaming.live.models import LiveStream

    stream = LiveStream.objects.select_related("video", "session").get(pk=session.stream_id)  # type: ignore[attr-defined]
    return live_representation(stream, owner_view=True)


KINDS: dict[str, ResourceKind] = {
    "videos.video": ResourceKind("video", "owner_id", _render_video),
    "subscriptions.subscription": ResourceKind("subscription", "user_id", _render_subscription),
    "live.livesession": ResourceKind("live_stream", "stream.owner_id", _render_live_session),
}


def kind_of(label: str) -> ResourceKind | None:
    return KINDS.get(label)
