"""Model rows as plain data, and back: what the tiers store instead of model instances.

A snapshot is ``{attname: value}`` for the fields that were loaded (deferred fields are left
out). Restoring builds an ordinary persisted instance with ``Model.from_db``: fields missing
from the snapshot stay deferred and load on first access, so a snapshot written by an older
release (before a field was added) is still read correctly.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from functools import cache
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS
from django.db.models import Model

M = TypeVar("M", bound=Model)

Snapshot = dict[str, Any]


@cache
def _attnames(model: type[Model]) -> tuple[str, ...]:
    return tuple(field.attname for field in model._meta.concrete_fields)


def snapshot(instance: Model) -> Snapshot:
    """The loaded column values of ``instance`` (no related objects)."""
    deferred = instance.get_deferred_fields()
    return {name: getattr(instance, name) for name in _attnames(type(instance)) if name not in deferred}


def restore(model: type[M], data: Mapping[str, Any]) -> M:
    """A fresh instance from a snapshot; mutable values are copied, so callers may change them."""
    names = [name for name in _attnames(model) if name in data]
    values = [copy.deepcopy(v) if isinstance(v, (list, dict)) else v for v in (data[n] for n in names)]
    return model.from_db(DEFAULT_DB_ALIAS, names, values)
