"""Index types of the catalogue that degrade gracefully on the embedded SQLite default."""

from __future__ import annotations

from typing import Any

from django.contrib.postgres.indexes import GinIndex
from django.db.models import Index


class PortableGinIndex(GinIndex):
    """GIN on PostgreSQL; a plain B-tree index where GIN does not exist (SQLite, where search
    does not use it)."""

    def create_sql(self, model: Any, schema_editor: Any, using: str = "", **kwargs: Any) -> Any:
        if schema_editor.connection.vendor != "postgresql":
            return Index.create_sql(self, model, schema_editor, **kwargs)
        return super().create_sql(model, schema_editor, using=using, **kwargs)
