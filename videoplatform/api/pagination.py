"""The source's pagination envelope (7.2): ``{"data": [...], "pagination": {...}}``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request


@dataclass(frozen=True)
class PageParams:
    page: int
    limit: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit


def _positive_int(raw: str | None, name: str, default: int, maximum: int | None) -> int:
    if raw is None:
        return default
    text = raw.strip()
    if not text.isdigit() or len(text) > 9:
        raise ValidationError({name: [f"{name} must be a whole number."]})
    value = int(text)
    if value < 1:
        raise ValidationError({name: [f"{name} must be at least 1."]})
    if maximum is not None and value > maximum:
        raise ValidationError({name: [f"{name} must be at most {maximum}."]})
    return value


def page_params(request: Request) -> PageParams:
    """Reads ``page`` (>= 1, default 1) and ``limit`` (1-100, default 20); anything else is a 400."""
    return PageParams(
        page=_positive_int(request.query_params.get("page"), "page", 1, None),
        limit=_positive_int(
            request.query_params.get("limit"),
            "limit",
            settings.API_PAGE_SIZE_DEFAULT,
            settings.API_PAGE_SIZE_MAX,
        ),
    )


def pagination_meta(params: PageParams, total: int) -> dict[str, Any]:
    total_pages = math.ceil(total / params.limit) if total else 0
    return {
        "total": total,
        "page": params.page,
        "limit": params.limit,
        "total_pages": total_pages,
        "has_more": params.page < total_pages,
    }


def paginate_queryset(queryset: QuerySet[Any], params: PageParams) -> tuple[list[Any], int]:
    """One COUNT and one page query, whatever the page size."""
    total = queryset.count()
    if params.offset >= total:
        return [], total
    return list(queryset[params.offset : params.offset + params.limit]), total


def envelope(data: list[Any], params: PageParams, total: int) -> dict[str, Any]:
    return {"data": data, "pagination": pagination_meta(params, total)}
