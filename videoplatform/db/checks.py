"""System checks for the data layer's settings."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.core import checks


def check_data_layer(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    for label, key in settings.SHARDED_MODELS.items():
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError):
            messages.append(
                checks.Error(
                    f"SHARDED_MODELS names {label!r}, which is not a model.", id="videoplatform_db.E001"
                )
            )
            continue
        if label != model._meta.label_lower:
            messages.append(
                checks.Error(
                    f"SHARDED_MODELS keys are lower case: use {model._meta.label_lower!r}.",
                    id="videoplatform_db.E002",
                )
            )
        if key not in {field.name for field in model._meta.get_fields()}:
            messages.append(
                checks.Error(f"{label} has no shard-key field {key!r}.", id="videoplatform_db.E003")
            )
    missing = [alias for alias in settings.SHARD_DATABASES if alias not in settings.DATABASES]
    if missing:
        messages.append(
            checks.Error(f"SHARD_DATABASES names unknown aliases: {missing}.", id="videoplatform_db.E004")
        )
    if settings.DATABASE_POOLED and "direct" not in settings.DATABASES:
        messages.append(
            checks.Warning(
                "DATABASE_POOLED is on but DATABASE_DIRECT_URL is not set: migrations run through "
                "the pooler and advisory locks are refused.",
                hint="Set DATABASE_DIRECT_URL to the primary without PgBouncer.",
                id="videoplatform_db.W001",
            )
        )
    bound = settings.DB_REPLICA_MAX_LAG + settings.DB_REPLICA_CHECK_INTERVAL
    if settings.REPLICA_DATABASES and bound >= settings.DB_READ_YOUR_WRITES_WINDOW:
        messages.append(
            checks.Warning(
                "DB_READ_YOUR_WRITES_WINDOW is not longer than DB_REPLICA_MAX_LAG + "
                "DB_REPLICA_CHECK_INTERVAL: once its pin expires, a client may read a replica that "
                "has not replayed its write yet.",
                id="videoplatform_db.W002",
            )
        )
    return messages


def register() -> None:
    checks.register(check_data_layer)
