"""Fast JSON for the API: orjson behind DRF's JSON renderer and parser, and rendered bodies kept
per process for the hot read paths.

``JSONRenderer`` and ``JSONParser`` are DRF's, with orjson doing the work: the same bytes for
the same data (compact separators, UTF-8, ``\\u2028``/``\\u2029`` escaped, date-times as DRF
writes them, ``Z`` for UTC) at a fraction of the CPU. Whatever orjson cannot take exactly as
DRF would (an ``indent`` asked for, integers beyond 64 bits, non-string keys, other types DRF's
encoder knows) goes to DRF's own code. Two known differences, both valid JSON for the same
values: a float below 1e-4 is written in orjson's form rather than Python's (``0.00005`` for
``5e-05``, ``1e-7`` for ``1e-07``), and a NaN or infinite float is written ``null`` where DRF's
strict renderer would fail the request.

``RenderedBodies`` keeps rendered bodies keyed by *what they show*: a view builds the key from
the very values its serializer would read (the cached rows the selectors returned, after their
visibility checks), so a body is reused only for identical content, and the cache tiers'
invalidation applies unchanged (a changed row makes a new key). ``PreRendered`` carries such a
body through DRF's response cycle: content negotiation, headers and status stay DRF's.
"""

from __future__ import annotations

import io
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from functools import cache
from typing import Any

import orjson
from django.conf import settings
from django.core.signals import setting_changed
from rest_framework import parsers, renderers
from rest_framework.parsers import get_encoding  # type: ignore[attr-defined]
from rest_framework.settings import api_settings
from rest_framework.utils.encoders import JSONEncoder as DrfJSONEncoder

_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_ENCODER = DrfJSONEncoder()
_LS, _PS = "\u2028".encode(), "\u2029".encode()
_LONG_INTEGER = re.compile(rb"\d{19}")  # orjson reads integers beyond 64 bits as floats


def _default(obj: Any) -> Any:
    return _ENCODER.default(obj)


class Unrenderable(Exception):
    """orjson cannot write this data exactly as DRF would: DRF's renderer does."""


def dumps(data: Any) -> bytes:
    """``data`` as DRF's JSONRenderer writes it with the default settings (compact, UTF-8, strict)."""
    try:
        body = orjson.dumps(data, default=_default, option=_OPTIONS)
    except (TypeError, orjson.JSONEncodeError) as exc:  # JSONEncodeError subclasses TypeError
        raise Unrenderable(str(exc)) from exc
    if _LS in body or _PS in body:
        body = body.replace(_LS, b"\\u2028").replace(_PS, b"\\u2029")
    return body


@cache
def _defaults_in_force() -> bool:
    """orjson matches DRF only with DRF's default JSON settings (compact, UTF-8, strict)."""
    return bool(api_settings.COMPACT_JSON and api_settings.UNICODE_JSON and api_settings.STRICT_JSON)


class PreRendered:
    """A body already rendered by ``dumps``; ``data()`` rebuilds the data for other renderings."""

    __slots__ = ("body", "data")

    def __init__(self, body: bytes, data: Callable[[], Any]) -> None:
        self.body = body
        self.data = data


class JSONRenderer(renderers.JSONRenderer):
    """DRF's JSONRenderer, written by orjson."""

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        renderer_context = renderer_context or {}
        fast = _defaults_in_force() and self.get_indent(accepted_media_type or "", renderer_context) is None
        if isinstance(data, PreRendered):
            if fast:
                return data.body
            data = data.data()
        if data is None:
            return b""
        if fast:
            try:
                return dumps(data)
            except Unrenderable:
                pass
        return super().render(data, accepted_media_type, renderer_context)  # type: ignore[no-any-return]


class JSONParser(parsers.JSONParser):
    """DRF's JSONParser, read by orjson; anything orjson refuses goes to DRF's parser, so that
    errors (and their messages) and the odd cases (integers beyond 64 bits, NaN) stay DRF's."""

    renderer_class = JSONRenderer

    def parse(
        self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        parser_context = parser_context or {}
        encoding = str(get_encoding(parser_context)).lower().replace("_", "-")
        if stream is None or encoding not in ("utf-8", "utf8"):
            return super().parse(stream, media_type, parser_context)
        body = stream.read()
        if not _LONG_INTEGER.search(body):
            try:
                return orjson.loads(body)
            except orjson.JSONDecodeError:
                pass
        return super().parse(io.BytesIO(body), media_type, parser_context)


class RenderedBodies:
    """A thread-safe LRU of rendered bodies, keyed by the content they show; bounded in entries
    and in bytes (a key holds about as much again as its body: the values it shows)."""

    def __init__(self, max_entries: int, max_bytes: int = 32 * 1024 * 1024) -> None:
        self.max_entries = max(0, max_entries)
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def body(self, key: Hashable, data: Callable[[], Any]) -> PreRendered | Any:
        """The body for ``key`` as a ``PreRendered`` (rendering ``data()`` once), or ``data()``
        itself when the cache is off or the data cannot be written by orjson."""
        if self.max_entries == 0:
            return data()
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
        if found is None:
            value = data()
            try:
                found = dumps(value)
            except Unrenderable:
                return value
            with self._lock:
                if key not in self._entries:
                    self._entries[key] = found
                    self._size += len(found)
                while len(self._entries) > self.max_entries or self._size > self.max_bytes:
                    _, dropped = self._entries.popitem(last=False)
                    self._size -= len(dropped)
        return PreRendered(found, data)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._size = 0


def _enabled_size() -> int:
    """Bodies are kept only when this module's renderer renders the API, with DRF's defaults."""
    classes: list[Any] = list(api_settings.DEFAULT_RENDERER_CLASSES)
    first = classes[0] if classes else None
    if not isinstance(first, type) or not issubclass(first, JSONRenderer) or not _defaults_in_force():
        return 0
    return settings.API_RENDERED_CACHE_SIZE


_bodies: RenderedBodies | None = None
_bodies_lock = threading.Lock()


def bodies() -> RenderedBodies:
    """This process's rendered bodies (built on first use from the settings)."""
    global _bodies
    current = _bodies
    if current is None:
        with _bodies_lock:
            if _bodies is None:
                _bodies = RenderedBodies(_enabled_size())
            current = _bodies
    return current


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    global _bodies
    if setting in ("REST_FRAMEWORK", "API_RENDERED_CACHE_SIZE"):
        _defaults_in_force.cache_clear()
        with _bodies_lock:
            _bodies = None


setting_changed.connect(_on_setting_changed)


def freeze(value: Any) -> Hashable:
    """A hashable stand-in for a JSON value (lists, dicts) in a content key: its exact JSON
    (key order included: it shows in the body)."""
    if isinstance(value, (list, dict)):
        try:
            return orjson.dumps(value)
        except TypeError:
            return repr(value)
    return value  # type: ignore[no-any-return]


__all__ = ["JSONParser", "JSONRenderer", "PreRendered", "RenderedBodies", "bodies", "dumps", "freeze"]
