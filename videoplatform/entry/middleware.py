"""Cross-cutting middleware: request metrics, response compression, JSON errors for the API."""

from __future__ import annotations

import gzip
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.urls import resolve
from django.utils.cache import patch_vary_headers
from django.utils.regex_helper import _lazy_re_compile

from ..api.errors import database_unavailable, database_unavailable_response, error_response, is_api_path
from ..metrics import LATENCY, REQUESTS, request_kind

try:
    import brotli
except ImportError:  # pragma: no cover - brotli is in requirements.txt
    brotli = None

logger = logging.getLogger(__name__)
GetResponse = Callable[[HttpRequest], HttpResponseBase]


class MetricsMiddleware:
    """Counts requests and times them, labelled by the view's route (bounded cardinality)."""

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        # The labelled children, looked up once per label set (labels() takes a lock each call).
        self._children: dict[tuple[str, str, int, str], tuple[Any, Any]] = {}

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        match = getattr(request, "resolver_match", None)
        view = (match.route or match.view_name) if match else "unmatched"
        method = request.method if request.method in _METHODS else "other"
        kind = request_kind(request.path)
        key = (method, view, response.status_code, kind)
        children = self._children.get(key)
        if children is None:
            children = (
                REQUESTS.labels(method, view, str(response.status_code), kind),
                LATENCY.labels(method, view, kind),
            )
            if len(self._children) < _CHILDREN_MAX:
                self._children[key] = children
        children[0].inc()
        children[1].observe(elapsed)
        return response


class ProbeMiddleware:
    """Answers probes and scrapes before the Host header is checked.

    The kubelet and Prometheus address a pod by its IP, which is not in ALLOWED_HOSTS; these
    endpoints disclose nothing host-specific, so they answer whatever the Host header says.
    """

    PATHS = frozenset({"/health", "/ready", "/metrics"})

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if request.path_info in self.PATHS and request.method in ("GET", "HEAD"):
            match = resolve(request.path_info)
            request.resolver_match = match
            return match.func(request)  # type: ignore[no-any-return]
        return self.get_response(request)


# Label sets remembered per process (routes x methods x statuses x kinds: a few hundred).
_CHILDREN_MAX = 4096


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_COMPRESSIBLE_PREFIXES = ("text/",)
_COMPRESSIBLE_TYPES = frozenset({"application/json", "application/problem+json"})
_q_split = _lazy_re_compile(r"\s*,\s*")


def _compressible(content_type: str) -> bool:
    ctype = content_type.split(";", 1)[0].strip().lower()
    return ctype.startswith(_COMPRESSIBLE_PREFIXES) or ctype in _COMPRESSIBLE_TYPES or ctype.endswith("+json")


def accepted_encodings(header: str) -> dict[str, float]:
    """Accept-Encoding as {coding: q}; ``gzip;q=0`` means gzip is refused."""
    accepted: dict[str, float] = {}
    for item in _q_split.split(header.strip()):
        if not item:
            continue
        coding, _, params = item.partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        accepted[coding.strip().lower()] = q
    return accepted


def choose_encoding(header: str) -> str | None:
    accepted = accepted_encodings(header)
    wildcard = accepted.get("*", 0.0)
    candidates = ["br", "gzip"] if brotli is not None else ["gzip"]
    best: tuple[float, str] | None = None
    for coding in candidates:
        q = accepted.get(coding, wildcard)
        if q > 0 and (best is None or q > best[0]):
            best = (q, coding)
    return best[1] if best else None


class CompressedBodies:
    """The compressed forms of bodies served again and again (the hot pages), per process.

    Keyed by the encoding and the body itself, so a hit is the same bytes compressed the same
    way; the views' rendered-body cache hands out the same bytes object for the same content,
    whose hash Python keeps, so a lookup costs no pass over the body. Bounded in entries and in
    bytes (bodies and their compressed forms), least recently used first out.
    """

    def __init__(self, max_entries: int = 512, max_bytes: int = 16 * 1024 * 1024) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, bytes], bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, encoding: str, body: bytes) -> bytes | None:
        with self._lock:
            found = self._entries.get((encoding, body))
            if found is not None:
                self._entries.move_to_end((encoding, body))
            return found

    def put(self, encoding: str, body: bytes, compressed: bytes) -> None:
        cost = len(body) + len(compressed)
        if cost > self.max_bytes // 8:
            return
        with self._lock:
            if (encoding, body) in self._entries:
                return
            self._entries[(encoding, body)] = compressed
            self._size += cost
            while len(self._entries) > self.max_entries or self._size > self.max_bytes:
                (_, old_body), old = self._entries.popitem(last=False)
                self._size -= len(old_body) + len(old)


def compress(encoding: str, body: bytes) -> bytes:
    if encoding == "br":
        return brotli.compress(body, quality=5)  # type: ignore[no-any-return]
    return gzip.compress(body, compresslevel=settings.COMPRESSION_GZIP_LEVEL, mtime=0)


class CompressionMiddleware:
    """Compresses JSON, text and HTML bodies of at least 1 KB: brotli or gzip level 6 (7.2).

    Bodies that a shared cache may keep (no ``private``/``no-store``) are the ones served again
    and again: their compressed forms are kept (``CompressedBodies``) and reused.
    """

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        # COMPRESSION_REUSE = False compresses every body afresh (for comparisons).
        self.compressed = CompressedBodies() if settings.COMPRESSION_REUSE else None

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if response.streaming or response.has_header("Content-Encoding"):
            return response
        if not _compressible(response.get("Content-Type", "")):
            return response
        patch_vary_headers(response, ("Accept-Encoding",))
        assert isinstance(response, HttpResponse)
        if len(response.content) < settings.COMPRESSION_MIN_BYTES:
            return response
        encoding = choose_encoding(request.META.get("HTTP_ACCEPT_ENCODING", ""))
        if encoding is None:
            return response
        content = response.content
        cache_control = response.get("Cache-Control", "")
        kept = self.compressed if "no-store" not in cache_control and "private" not in cache_control else None
        compressed = kept.get(encoding, content) if kept is not None else None
        if compressed is None:
            compressed = compress(encoding, content)
            if kept is not None:
                kept.put(encoding, content, compressed)
        if len(compressed) >= len(content):
            return response
        response.content = compressed
        response["Content-Length"] = str(len(compressed))
        response["Content-Encoding"] = encoding
        etag = response.get("ETag")
        if etag and etag.startswith('"'):
            response["ETag"] = "W/" + etag
        return response


class ApiErrorMiddleware:
    """Under /api/ every error answer is JSON in the one shape, whatever raised it."""

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if (
            response.status_code >= 400
            and is_api_path(request.path)
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            replacement = error_response(response.status_code)
            for header in ("Allow", "Retry-After", "WWW-Authenticate"):
                if response.has_header(header):
                    replacement[header] = response[header]
            return replacement
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_api_path(request.path) or isinstance(exception, (Http404, PermissionDenied)):
            return None  # Django's own handling; __call__ renders the JSON body
        if isinstance(exception, RequestDataTooBig):
            return error_response(413)
        if isinstance(exception, SuspiciousOperation):
            return error_response(400)
        if database_unavailable(exception):
            logger.warning("Database unavailable on %s %s: %s", request.method, request.path, exception)
            return database_unavailable_response()
        logger.exception("Unhandled error on %s %s", request.method, request.path)
        return error_response(500)
