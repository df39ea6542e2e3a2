"""factory_boy factories for every model."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import factory
from django.utils import timezone

from accounts.models import User
from subscriptions.models import Plan, Subscription
from videos.models import Video

DEFAULT_PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    display_name = factory.LazyAttribute(lambda o: o.username.title())
    password = factory.django.Password(DEFAULT_PASSWORD)


class VideoFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Video

    owner = factory.SubFactory(UserFactory)
    title = factory.Sequence(lambda n: f"Video {n}")
    description = "A test video."
    tags = factory.LazyFunction(lambda: ["test"])
    privacy = Video.Privacy.PUBLIC

    class Params:
        # VideoFactory(ready=True): transcoded and playable (the default awaits its upload).
        ready = factory.Trait(status=Video.Status.READY)


class PlanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Plan

    code = factory.Sequence(lambda n: f"plan-{n}")
    name = factory.Sequence(lambda n: f"Plan {n}")
    price = Decimal("9.99")
    currency = "USD"
    max_resolution = 720
    concurrent_streams = 2
    features = factory.LazyFunction(lambda: ["hd"])
    sort_order = factory.Sequence(lambda n: 100 + n)


class SubscriptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscription

    user = factory.SubFactory(UserFactory)
    plan = factory.SubFactory(PlanFactory)
    status = Subscription.Status.ACTIVE
    current_period_end = factory.LazyFunction(lambda: timezone.now() + timedelta(days=30))
