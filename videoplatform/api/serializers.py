"""Serializer building blocks shared by every app: strict input, no silent coercion."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers


class StrictInputSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """Rejects fields it does not know (a typo must not be silently ignored)."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, Mapping):
            raise serializers.ValidationError(
                {"non_field_errors": [f"Expected a JSON object, got {type(data).__name__}."]}
            )
        unknown = sorted(str(name) for name in data if name not in self.fields)
        if unknown:
            errors: dict[str, list[str]] = {"non_field_errors": [f"Unknown field(s): {', '.join(unknown)}."]}
            errors.update({name: ["This field is not accepted here."] for name in unknown})
            raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    """A string field that refuses numbers, booleans, lists and objects instead of str()-ing them."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)  # type: ignore[no-any-return]


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer, not a string of digits, a float or a boolean."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)  # type: ignore[no-any-return]


class StrictEmailField(serializers.EmailField):
    """An email field that refuses non-string JSON values."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)  # type: ignore[no-any-return]


class StrictBooleanField(serializers.BooleanField):
    """JSON true/false (and the strings "true"/"false" from forms), nothing else."""

    def to_internal_value(self, data: Any) -> bool:
        if isinstance(data, bool):
            return data
        if isinstance(data, str) and data.lower() in ("true", "false"):
            return data.lower() == "true"
        self.fail("invalid", input=data)
        raise AssertionError  # unreachable: fail() raises
