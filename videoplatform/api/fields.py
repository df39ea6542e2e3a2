"""Field selection (7.2): ``?fields=id,title,view_count`` returns only those keys."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request


def requested_fields(request: Request, allowed: Iterable[str]) -> list[str] | None:
    """The fields asked for, in the order given, or None for all; unknown names are a 400."""
    raw = request.query_params.get("fields")
    if raw is None:
        return None
    names = [name.strip() for name in raw.split(",") if name.strip()]
    if not names:
        raise ValidationError({"fields": ["fields must name at least one field."]})
    allowed_set = set(allowed)
    unknown = [name for name in names if name not in allowed_set]
    if unknown:
        raise ValidationError(
            {
                "fields": [
                    f"Unknown field(s): {', '.join(unknown)}. Allowed: {', '.join(sorted(allowed_set))}."
                ]
            }
        )
    return list(dict.fromkeys(names))


class FieldSelectionMixin(serializers.Serializer):  # type: ignore[type-arg]
    """Drops every field not named in ``context["fields"]`` (when given)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        selected = self.context.get("fields")
        if selected is not None:
            for name in set(self.fields) - set(selected):
                self.fields.pop(name)
