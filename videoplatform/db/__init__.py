"""The data layer: primary/replica routing with read-your-writes, replica health, PgBouncer
settings, user-id sharding, and database-level helpers (a portable BRIN index).

The API other rooms use (docs/data-layer.md):

- ``use_primary()``: reads in a block or a decorated function go to the primary;
  ``pin_user(user_id)`` / ``pin_current_client()``: read-your-writes for writes made on a
  user's behalf outside their own unsafe request.
- ``shard_for_user(user_id)`` -> alias, ``for_user(Model, user_id)`` -> queryset on that
  shard, ``ShardedManager`` for sharded models.
- ``PRIMARY``: the primary's alias, for reads that must not come from a replica (cache fills).
- ``advisory_lock(name)``: a lock on the unpooled ``direct`` alias.

Models must not be imported here: ``videoplatform.db.indexes`` is imported by models.
"""

from .aliases import PRIMARY
from .locks import advisory_lock
from .routing import pin_current_client, pin_user, use_primary
from .sharding import ShardedManager, ShardedQuerySet, ShardKeyRequired, for_user, shard_for_user, shard_index

__all__ = [
    "PRIMARY",
    "ShardKeyRequired",
    "ShardedManager",
    "ShardedQuerySet",
    "advisory_lock",
    "for_user",
    "pin_current_client",
    "pin_user",
    "shard_for_user",
    "shard_index",
    "use_primary",
]
