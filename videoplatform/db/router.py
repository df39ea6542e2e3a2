"""The database router: primary for writes, replicas for reads, shards for per-user data.

- Sharded models (``SHARDED_MODELS``) read and write the shard of their user (``sharding``).
- Every other model writes to ``default`` and reads where ``routing.read_alias()`` says: a
  replica in rotation, or the primary (transaction, ``use_primary()``, unsafe request, a write
  earlier in the request, a read-your-writes pin, a fresh task, no healthy replica).
- Migrations: shards get the sharded models only; replicas get nothing (they replicate the
  primary); ``default`` and ``direct`` get the rest (and the sharded models too when the
  primary is the only shard).
- Relations: never across shards, nor between a shard and the primary.
"""

from __future__ import annotations

from typing import Any

from django.db import models

from videoplatform.metrics import DB_READS_ROUTED, labelled

from . import sharding
from .aliases import PRIMARY, primary_aliases, replica_aliases, shard_aliases
from .routing import read_alias


class DataLayerRouter:
    def db_for_read(self, model: type[models.Model], **hints: Any) -> str:
        if sharding.is_sharded(model):
            alias = sharding.route(model, hints)
            reason = "shard"
        else:
            alias, reason = read_alias()
        labelled(DB_READS_ROUTED, alias, reason).inc()
        return alias

    def db_for_write(self, model: type[models.Model], **hints: Any) -> str:
        if sharding.is_sharded(model):
            return sharding.route(model, hints)
        return PRIMARY

    def allow_relation(self, obj1: models.Model, obj2: models.Model, **hints: Any) -> bool | None:
        sharded1, sharded2 = sharding.is_sharded(obj1), sharding.is_sharded(obj2)
        if sharded1 or sharded2:
            # Rows of one shard may relate to each other; nothing crosses a shard boundary.
            return sharded1 and sharded2 and obj1._state.db == obj2._state.db
        pool = primary_aliases() | set(replica_aliases())
        if obj1._state.db in pool and obj2._state.db in pool:
            return True
        return None

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any) -> bool:
        if db in replica_aliases():
            return False
        label = f"{app_label}.{model_name}".lower() if model_name else None
        sharded = label is not None and sharding.is_sharded_label(label)
        on_primary = db in primary_aliases()
        if db in shard_aliases() and not on_primary:
            return sharded
        if on_primary:
            return not sharded or PRIMARY in shard_aliases()
        return False
