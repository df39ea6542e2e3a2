"""Output serializers built once per process: DRF's representation without DRF's set-up cost.

Instantiating a DRF serializer deep-copies its declared fields (and a ``ModelSerializer`` builds
them from the model) on every request; for a small answer that is most of the serializer's time.
The output of ``to_representation`` depends only on the instance, the serializer class and its
context, so ``represent`` keeps one bound serializer per (class, context) as a template and calls
its ``to_representation``: the same data as ``Serializer(instance, context=...).data``.
Representation reads the bound fields and changes nothing, so threads share a template.
Only for output: input validation keeps a fresh serializer per request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

from django.conf import settings
from django.db import models
from rest_framework import serializers

from .rendering import freeze

# Field selections make the number of contexts the clients' choice: keep a bounded number.
MAX_TEMPLATES = 256

_templates: dict[tuple[Any, ...], Callable[[Any], Any]] = {}
_lock = threading.Lock()


def _enabled() -> bool:
    # API_SERIALIZER_TEMPLATES = False builds a serializer per call, as DRF does (for comparisons).
    return settings.API_SERIALIZER_TEMPLATES


def _context_key(context: Mapping[str, Any]) -> tuple[Hashable, ...] | None:
    key = []
    for name, value in sorted(context.items()):
        value = ("seq", *value) if isinstance(value, (list, tuple)) else freeze(value)
        try:
            hash(value)
        except TypeError:
            return None
        key.append((name, value))
    return tuple(key)


def representer(
    serializer_class: type[serializers.BaseSerializer],
    context: Mapping[str, Any] | None = None,  # type: ignore[type-arg]
) -> Callable[[Any], Any]:
    """``to_representation`` of a serializer of this class and context, bound once per process."""
    context = dict(context or {})
    context_key = _context_key(context)
    key = (serializer_class, context_key)
    found = _templates.get(key) if context_key is not None else None
    if found is not None:
        return found
    template = serializer_class(context=context)
    if isinstance(template, serializers.Serializer):
        _ = template.fields  # bind every field now, before threads share the template
    represent_one = template.to_representation
    if context_key is not None and len(_templates) < MAX_TEMPLATES:
        with _lock:
            _templates.setdefault(key, represent_one)
    return represent_one


def represent(
    serializer_class: type[serializers.BaseSerializer],  # type: ignore[type-arg]
    instance: Any,
    *,
    many: bool = False,
    context: Mapping[str, Any] | None = None,
) -> Any:
    """What ``serializer_class(instance, many=many, context=context).data`` holds."""
    if not _enabled():
        return serializer_class(instance, many=many, context=dict(context or {})).data
    represent_one = representer(serializer_class, context)
    if many:
        items: Iterable[Any] = instance.all() if isinstance(instance, models.Manager) else instance
        return [represent_one(item) for item in items]
    return represent_one(instance)
