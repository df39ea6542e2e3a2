"""String ids in the source's style: a type prefix and 22 random URL-safe characters."""

from __future__ import annotations

import secrets
from typing import Any

from django.db import models

ID_RANDOM_BYTES = 16  # 22 URL-safe characters


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(ID_RANDOM_BYTES)}"


class PrefixedIdField(models.CharField):  # type: ignore[type-arg]
    """A primary key such as ``usr_3q2...``; the prefix names the type of the object."""

    def __init__(self, prefix: str, **kwargs: Any) -> None:
        self.prefix = prefix
        kwargs.setdefault("max_length", 32)
        kwargs["primary_key"] = True
        kwargs["editable"] = False
        kwargs["default"] = self.generate
        super().__init__(**kwargs)

    def generate(self) -> str:
        return new_id(self.prefix)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        for key in ("default", "primary_key", "editable"):
            kwargs.pop(key, None)
        kwargs["prefix"] = self.prefix
        return name, path, args, kwargs
