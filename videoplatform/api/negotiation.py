"""Content negotiation that remembers its answers: DRF's choice, computed once per combination.

DRF parses the ``Accept`` header and walks the renderers on every request; on the hot read
paths that is a noticeable share of a cached answer's time. The answer depends only on the
view's renderer classes, the format asked for (``?format=`` or a suffix) and the ``Accept``
header, so it is remembered per combination (a bounded number of them: the header is the
client's to choose) and is DRF's own answer, errors included (those are never remembered).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request

MAX_REMEMBERED = 512


class CachedContentNegotiation(DefaultContentNegotiation):
    _answers: dict[tuple[Any, ...], tuple[int, str]] = {}
    _lock = threading.Lock()

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderers = list(renderers)
        key = (
            tuple(type(renderer) for renderer in renderers),
            format_suffix,
            request.query_params.get(self.settings.URL_FORMAT_OVERRIDE)
            if self.settings.URL_FORMAT_OVERRIDE
            else None,
            request.META.get("HTTP_ACCEPT", "*/*"),
        )
        remember = settings.API_NEGOTIATION_MEMO  # False: DRF's every time
        found = self._answers.get(key) if remember else None
        if found is not None:
            index, media_type = found
            return renderers[index], media_type
        renderer, media_type = super().select_renderer(request, renderers, format_suffix)
        position = next((i for i, candidate in enumerate(renderers) if candidate is renderer), None)
        if remember and position is not None and len(self._answers) < MAX_REMEMBERED:
            with self._lock:
                self._answers[key] = (position, media_type)
        return renderer, media_type
