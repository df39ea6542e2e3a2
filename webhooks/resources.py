"""The resources events are about: whose they are and how the API shows them.

An event's ``data`` is the resource as its API endpoint renders it (the same serializer), read
again inside the publishing transaction so that it shows the state the event announces. A
resource without an entry here sends no webhooks. Live streams: add an entry for the live
session model (owner field and serializer) when it exists; its ``live.*`` types are in the
catalogue (``videoplatform.events.EVENT_TYPES``) already.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import models


@dataclass(frozen=True)
class ResourceKind:
    name: str  # "video": the payload's resource type
    owner_field: str  # the attribute holding the owner's id
    render: Callable[[models.Model], dict[str, Any]]

    def owner_id(self, resource: models.Model) -> str:
        return str(getattr(resource, self.owner_field))


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


KINDS: dict[str, ResourceKind] = {
    "videos.video": ResourceKind("video", "owner_id", _render_video),
    "subscriptions.subscription": ResourceKind("subscription", "user_id", _render_subscription),
}


def kind_of(label: str) -> ResourceKind | None:
    return KINDS.get(label)
