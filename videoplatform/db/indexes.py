"""Index types that degrade gracefully on the embedded SQLite default."""

from __future__ import annotations

from typing import Any

from django.contrib.postgres.indexes import BrinIndex
from django.db.models import Index


class PortableBrinIndex(BrinIndex):
    """BRIN on PostgreSQL; a plain B-tree index where BRIN does not exist (SQLite)."""

    def create_sql(self, model: Any, schema_editor: Any, using: str = "", **kwargs: Any) -> Any:
        if schema_editor.connection.vendor != "postgresql":
            return Index.create_sql(self, model, schema_editor, **kwargs)
        return super().create_sql(model, schema_editor, using=using, **kwargs)
