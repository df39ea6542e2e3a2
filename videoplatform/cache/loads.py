"""Loader queries compiled once: rows by primary key, as the tiers' fills read them.

A fill of one video or one profile spent most of its CPU compiling its query (the ORM builds and
compiles ``Model.objects.filter(pk__in=...)`` anew each time: about as much as the rest of the
request). ``rows_by_pk`` compiles each shape once (model, loaded fields, database alias, number
of keys) and then only runs it: the same SQL, the same converters (``from_db_value``), the same
``Model.from_db`` the ORM's iterable uses, so the instances, and the snapshots made of them, are
the ones the ORM would give. Shapes the cache does not fit (more keys than ``MAX_KEYS``) go
through the ORM.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from django.db import connections
from django.db.models import Model

M = TypeVar("M", bound=Model)

MAX_KEYS: Final = 64


@dataclass(frozen=True)
class _Shape:
    sql: str
    attnames: list[str]
    converters: list[tuple[int, list[Any], Any]]  # (column, converters, expression)


_shapes: dict[tuple[type[Model], tuple[str, ...] | None, str, int], _Shape | None] = {}
_lock = threading.Lock()


def _compile(model: type[Model], fields: tuple[str, ...] | None, alias: str, count: int) -> _Shape | None:
    marks = [f"\x00key{i}\x00" for i in range(count)]
    queryset = model._default_manager.using(alias).filter(pk__in=marks)
    if fields is not None:
        queryset = queryset.only(*fields)
    compiler = queryset.query.get_compiler(using=alias)
    sql, params = compiler.as_sql()
    klass_info = compiler.klass_info
    if list(params) != marks or klass_info is None or compiler.annotation_col_map:
        return None  # not a plain "these keys" query: leave it to the ORM
    select = compiler.select
    columns = [select[index][0] for index in klass_info["select_fields"]]
    if len(columns) != len(select):
        return None
    converters = compiler.get_converters([expression for expression, _, _ in select])
    return _Shape(
        sql=sql,
        attnames=[column.target.attname for column in columns],
        converters=[(index, list(pair[0]), pair[1]) for index, pair in sorted(converters.items())],
    )


def rows_by_pk(
    model: type[M], alias: str, pks: Iterable[Any], *, fields: Sequence[str] | None = None
) -> list[M]:
    """``model.objects.using(alias).filter(pk__in=pks)`` (with ``.only(*fields)``), in the
    order the database returns them, from a query compiled once per shape."""
    wanted = list(dict.fromkeys(pks))
    if not wanted:
        return []
    loaded = tuple(fields) if fields is not None else None
    key = (model, loaded, alias, len(wanted))
    shape = _shapes.get(key, False)
    if shape is False:
        shape = _compile(model, loaded, alias, len(wanted)) if len(wanted) <= MAX_KEYS else None
        with _lock:
            _shapes[key] = shape
    if shape is None:
        queryset = model._default_manager.using(alias).filter(pk__in=wanted)
        return list(queryset.only(*loaded) if loaded is not None else queryset)
    assert isinstance(shape, _Shape)
    connection = connections[alias]
    pk_field = model._meta.pk
    assert pk_field is not None
    params = [pk_field.get_db_prep_value(pk, connection) for pk in wanted]
    with connection.cursor() as cursor:
        cursor.execute(shape.sql, params)
        rows = cursor.fetchall()
    found = []
    for row in rows:
        values = list(row)
        for index, converters, expression in shape.converters:
            value = values[index]
            for converter in converters:
                value = converter(value, expression, connection)
            values[index] = value
        found.append(model.from_db(alias, shape.attnames, values))
    return found
