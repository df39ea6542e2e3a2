"""Every way videos, users, plans and subscriptions are written (services, admin forms and
actions, cascades, management commands, plain ORM calls in a shell) leaves the API answering
what the database holds: no 500, no deleted or hidden video readable, no stale plan or feed.

Each case warms the cached reads first (the feed, a video's detail in full and with
``?fields=``, the owner's list, the plans, the subscriber's subscription), makes one write, and
reads everything again as an anonymous client and as a signed-in one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from accounts import services as account_services
from accounts.models import User
from subscriptions import services as subscription_services
from subscriptions.models import Plan, Subscription
from tests.cache.conftest import live, requires_redis
from tests.conftest import login_client
from tests.factories import PlanFactory, SubscriptionFactory, UserFactory, VideoFactory
from videoplatform.cache import tiers
from videos import services as video_services
from videos.models import Video

pytestmark = [requires_redis, pytest.mark.django_db(transaction=True)]


@dataclass
class World:
    owner: User
    video: Video
    plan: Plan
    subscriber: User
    subscription: Subscription
    admin: Client


def admin_client() -> Client:
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def action(client: Client, model: str, name: str, pks: list[Any], **extra: str) -> None:
    response = client.post(f"/admin/{model}/", {"action": name, "_selected_action": pks, **extra})
    assert response.status_code in (200, 302), response.status_code


def delete_page(client: Client, model: str, pk: Any) -> None:
    response = client.post(f"/admin/{model}/{pk}/delete/", {"post": "yes"})
    assert response.status_code == 302, response.status_code


# --- the write paths: (name, write, what it leaves) ----------------------------------------
Write = Callable[[World], None]
GONE, HIDDEN, SHOWN = "gone", "hidden", "shown"

WRITES: list[tuple[str, Write, str]] = [
    # users
    ("user_delete service", lambda w: account_services.user_delete(user=w.owner), GONE),
    ("users_deactivate service", lambda w: account_services.users_deactivate(user_ids=[w.owner.pk]), SHOWN),
    ("admin: delete a user", lambda w: delete_page(w.admin, "accounts/user", w.owner.pk), GONE),
    (
        "admin: delete selected users",
        lambda w: action(w.admin, "accounts/user", "delete_selected", [w.owner.pk], post="yes"),
        GONE,
    ),
    (
        "admin: deactivate users",
        lambda w: action(w.admin, "accounts/user", "deactivate_users", [w.owner.pk]),
        SHOWN,
    ),
    ("shell: a queryset deletes users", lambda w: User.objects.filter(pk=w.owner.pk).delete(), GONE),
    ("shell: an instance deletes itself", lambda w: User.objects.get(pk=w.owner.pk).delete(), GONE),
    # videos
    ("video_delete service", lambda w: video_services.video_delete(video=w.video), GONE),
    (
        "video_update service",
        lambda w: video_services.video_update(video=w.video, changes={"privacy": Video.Privacy.PRIVATE}),
        HIDDEN,
    ),
    ("admin: delete a video", lambda w: delete_page(w.admin, "videos/video", w.video.pk), GONE),
    (
        "admin: delete selected videos",
        lambda w: action(w.admin, "videos/video", "delete_selected", [w.video.pk], post="yes"),
        GONE,
    ),
    ("admin: make private", lambda w: action(w.admin, "videos/video", "make_private", [w.video.pk]), HIDDEN),
    ("shell: a queryset deletes videos", lambda w: Video.objects.filter(pk=w.video.pk).delete(), GONE),
    ("shell: a video deletes itself", lambda w: Video.objects.get(pk=w.video.pk).delete(), GONE),
    # plans
    (
        "admin: deactivate a plan",
        lambda w: w.admin.post(
            "/admin/subscriptions/plan/",
            {
                "form-TOTAL_FORMS": "1",
                "form-INITIAL_FORMS": "1",
                "form-0-id": str(w.plan.pk),
                "form-0-sort_order": str(w.plan.sort_order),
                "_save": "Save",
            },
        ),
        SHOWN,
    ),
    (
        "admin: delete a plan (with its subscriptions gone first)",
        lambda w: (
            Subscription.objects.filter(plan=w.plan).delete(),
            delete_page(w.admin, "subscriptions/plan", w.plan.pk),
        ),
        SHOWN,
    ),
    # subscriptions
    (
        "subscription_cancel service",
        lambda w: subscription_services.subscription_cancel(subscription=w.subscription),
        SHOWN,
    ),
    (
        "admin: expire now",
        lambda w: action(w.admin, "subscriptions/subscription", "expire_now", [w.subscription.pk]),
        SHOWN,
    ),
    (
        "admin: delete a subscription",
        lambda w: delete_page(w.admin, "subscriptions/subscription", w.subscription.pk),
        SHOWN,
    ),
    (
        "shell: a subscriber's account deleted",
        lambda w: User.objects.filter(pk=w.subscriber.pk).delete(),
        SHOWN,
    ),
    (
        "job: expire lapsed subscriptions",
        lambda w: subscription_services.subscription_expire_lapsed(
            now=w.subscription.current_period_end + timedelta(seconds=1)
        ),
        SHOWN,
    ),
    ("command: invalidate_cache", lambda w: call_command("invalidate_cache", "--all"), SHOWN),
]


def reads(world: World) -> dict[str, str]:
    video, owner = world.video, world.owner
    return {
        "feed": "/api/videos",
        "detail": f"/api/videos/{video.pk}",
        "fields": f"/api/videos/{video.pk}?fields=id,title,owner",
        "owner's list": f"/api/users/{owner.pk}/videos",
        "plans": "/api/subscriptions/plans",
    }


def read_all(world: World, clients: list[Any]) -> dict[tuple[int, str], Any]:
    answers = {}
    for n, client in enumerate(clients):
        for name, path in reads(world).items():
            answers[(n, name)] = client.get(path)
    return answers


@pytest.mark.parametrize(("name", "write", "leaves"), WRITES, ids=[name for name, _, _ in WRITES])
def test_after_every_write_path_the_api_shows_what_the_database_holds(
    name: str, write: Write, leaves: str, api_client: Any
):
    live(tiers())
    owner = UserFactory()
    world = World(
        owner=owner,
        video=VideoFactory(owner=owner, title="Watched", ready=True),
        plan=PlanFactory(name="Gold"),
        subscriber=(subscriber := UserFactory()),
        subscription=SubscriptionFactory(user=subscriber),
        admin=admin_client(),
    )
    world.subscription.plan = world.plan
    world.subscription.save()
    viewer = login_client(UserFactory())
    subscriber_client = login_client(world.subscriber)
    owner_client = login_client(world.owner)
    assert owner_client.get("/api/auth/me").status_code == 200  # the token's snapshot is cached
    clients = [api_client, viewer]
    read_all(world, clients)
    read_all(world, clients)  # warm: everything comes from the cache tiers now
    assert subscriber_client.get("/api/subscriptions/me").status_code == 200

    write(world)

    answers = read_all(world, clients)
    errors = {key: answer.status_code for key, answer in answers.items() if answer.status_code >= 500}
    assert not errors, f"{name}: {errors}"
    video_exists = Video.objects.filter(pk=world.video.pk).exists()
    video_public = Video.objects.filter(pk=world.video.pk, privacy=Video.Privacy.PUBLIC).exists()
    for n in range(len(clients)):
        feed_ids = [item["id"] for item in answers[(n, "feed")].json()["data"]]
        detail = answers[(n, "detail")].status_code
        fields = answers[(n, "fields")].status_code
        if leaves in (GONE, HIDDEN):
            assert world.video.pk not in feed_ids, name
            assert detail == fields == 404, (name, detail, fields)
        if leaves == GONE:
            assert not video_exists
        if leaves == SHOWN:
            assert video_public and detail == fields == 200, (name, detail, fields)
        plans = [plan["name"] for plan in answers[(n, "plans")].json()["data"]]
        active = list(Plan.objects.filter(is_active=True).values_list("name", flat=True))
        assert sorted(plans) == sorted(active), name
    if not User.objects.filter(pk=world.owner.pk, is_active=True).exists():
        assert owner_client.get("/api/auth/me").status_code == 401, name  # its token is refused
    current = subscriber_client.get("/api/subscriptions/me")
    assert current.status_code < 500, (name, current.status_code)
    still = Subscription.objects.filter(
        user_id=world.subscriber.pk, status=Subscription.Status.ACTIVE
    ).exists()
    if current.status_code == 200 and current.json():
        assert still or current.json().get("status") != "active", name
