"""User-id sharding of per-user, high-volume data (source 3.3).

A user's rows live in shard ``int(md5(user_id).hexdigest()[:8], 16) % SHARD_COUNT``, the
database ``SHARD_DATABASES[i]``. Sharded models are listed in ``SHARDED_MODELS`` with their
shard-key field; they hold plain ids, no foreign keys, and are never joined across shards.

    shard_for_user("usr_123")                      # -> "shard2"
    for_user(WatchEvent, "usr_123").order_by("-started_at")[:20]
    for_user(WatchEvent, "usr_123").create(user_id="usr_123", video_id=...)
    WatchEvent(user_id="usr_123", ...).save()      # the router reads the instance's user_id

With ``objects = ShardedManager()`` on the model, ``Model.objects.create(user_id=...)``,
``bulk_create`` and ``filter(user_id=...)`` find the shard by themselves.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from typing import Any, TypeVar

from django.conf import settings
from django.db import models
from django.db.models import QuerySet

from .aliases import shard_aliases

M = TypeVar("M", bound=models.Model)


class ShardKeyRequired(LookupError):
    """A query on a sharded model that does not say whose rows it wants."""


def shard_index(user_id: str, shard_count: int | None = None) -> int:
    """The source's function: ``int(md5(user_id).hexdigest()[:8], 16) % SHARD_COUNT``."""
    count = settings.SHARD_COUNT if shard_count is None else shard_count
    digest = hashlib.md5(str(user_id).encode(), usedforsecurity=False).hexdigest()
    return int(digest[:8], 16) % count


def shard_for_user(user_id: str) -> str:
    """The database alias that holds ``user_id``'s rows."""
    shards = shard_aliases()
    return shards[shard_index(user_id, len(shards))]


def model_label(model: type[models.Model] | models.Model) -> str:
    return model._meta.label_lower


def shard_key(model: type[models.Model] | models.Model) -> str | None:
    """The shard-key field of a sharded model, or None for a model that is not sharded."""
    return settings.SHARDED_MODELS.get(model_label(model))


def is_sharded(model: type[models.Model] | models.Model) -> bool:
    return shard_key(model) is not None


def is_sharded_label(label: str) -> bool:
    """``label`` is "app_label.model_name" (any case)."""
    return label.lower() in settings.SHARDED_MODELS


def sharded_models() -> list[type[models.Model]]:
    from django.apps import apps

    return [apps.get_model(label) for label in settings.SHARDED_MODELS]


def for_user(model_or_queryset: type[M] | QuerySet[M], user_id: str) -> QuerySet[M]:
    """The rows of ``user_id`` in a sharded model, read from (and written to) their shard."""
    queryset = (
        model_or_queryset
        if isinstance(model_or_queryset, QuerySet)
        else model_or_queryset._default_manager.all()
    )
    key = shard_key(queryset.model)
    if key is None:
        raise TypeError(f"{model_label(queryset.model)} is not a sharded model")
    return queryset.using(shard_for_user(user_id)).filter(**{key: user_id})


def shard_for_instance(model: type[models.Model], instance: Any) -> str | None:
    """The shard of a model instance: by its shard key, else where it was loaded from."""
    key = shard_key(model)
    if key is not None and isinstance(instance, models.Model) and is_sharded(instance):
        value = getattr(instance, key, None)
        if value:
            return shard_for_user(str(value))
        if instance._state.db in shard_aliases():
            return instance._state.db
    return None


def route(model: type[models.Model], hints: dict[str, Any]) -> str:
    """The router's answer for a sharded model (raises ShardKeyRequired when it cannot know)."""
    alias = shard_for_instance(model, hints.get("instance"))
    if alias is not None:
        return alias
    shards = shard_aliases()
    if len(shards) == 1:
        return shards[0]
    raise ShardKeyRequired(
        f"{model_label(model)} is sharded by {shard_key(model)}: query it with "
        f"for_user(model, user_id) or .using(shard_for_user(user_id))"
    )


def _explicit_alias(queryset: QuerySet[Any]) -> str | None:
    """The alias given with ``.using()``, if any (``QuerySet.db`` would ask the router)."""
    return getattr(queryset, "_db", None)


class ShardedQuerySet(QuerySet[M]):
    """A queryset that finds the shard from the shard key it is given."""

    def for_user(self, user_id: str) -> ShardedQuerySet[M]:
        return for_user(self, user_id)  # type: ignore[return-value]

    def _key(self) -> str:
        key = shard_key(self.model)
        if key is None:
            raise TypeError(f"{model_label(self.model)} is not in SHARDED_MODELS")
        return key

    def filter(self, *args: Any, **kwargs: Any) -> ShardedQuerySet[M]:
        value = kwargs.get(self._key())
        if _explicit_alias(self) is None and isinstance(value, str | int):
            return super().filter(*args, **kwargs).using(shard_for_user(str(value)))
        return super().filter(*args, **kwargs)

    def create(self, **kwargs: Any) -> M:
        value = kwargs.get(self._key())
        if _explicit_alias(self) is None and value:
            return self.using(shard_for_user(str(value))).create(**kwargs)
        return super().create(**kwargs)

    def bulk_create(self, objs: Iterable[M], *args: Any, **kwargs: Any) -> list[M]:
        if _explicit_alias(self) is not None:
            return super().bulk_create(objs, *args, **kwargs)
        key = self._key()
        by_shard: dict[str, list[M]] = defaultdict(list)
        for obj in objs:
            by_shard[shard_for_user(str(getattr(obj, key)))].append(obj)
        created: list[M] = []
        for alias, group in by_shard.items():
            created += super().using(alias).bulk_create(group, *args, **kwargs)
        return created


class ShardedManager(models.Manager.from_queryset(ShardedQuerySet)):  # type: ignore[misc]
    """``objects = ShardedManager()`` on a sharded model."""
