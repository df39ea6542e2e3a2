"""The floor of the server: a bare WSGI app that answers the same bytes as the platform.

The harness captures the platform's answers (status, headers, body) to the requests it
measures and starts this app under the same gunicorn configuration; what this serves per
second is the most any Python view could, with gunicorn, the HTTP parsing and the access log
all the same. ``PERF_FLOOR_RESPONSES`` names a JSON file:
``{"detail": {"status": "200 OK", "headers": [[name, value], ...], "body": base64}, ...}``.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterable
from typing import Any

StartResponse = Callable[..., Any]


def _load() -> dict[str, tuple[str, list[tuple[str, str]], bytes]]:
    path = os.environ.get("PERF_FLOOR_RESPONSES", "")
    if not path:
        return {}
    with open(path, encoding="utf-8") as handle:
        raw = json.load(handle)
    return {
        key: (
            value["status"],
            [(str(k), str(v)) for k, v in value["headers"]],
            base64.b64decode(value["body"]),
        )
        for key, value in raw.items()
    }


RESPONSES = _load()
NOT_FOUND = ("404 Not Found", [("Content-Type", "text/plain")], b"not found")


def route(path: str) -> str:
    """Which captured answer a path gets (the harness captures one per endpoint it compares)."""
    if path == "/api/subscriptions/plans":
        return "plans"
    if path == "/api/videos":
        return "feed"
    if path == "/api/auth/login":
        return "login"
    if path == "/api/videos/create":
        return "create"
    if path.startswith("/api/videos/"):
        return "stream" if path.endswith("/stream") else "detail"
    return "health" if path == "/health" else ""


def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    status, headers, body = RESPONSES.get(route(environ.get("PATH_INFO", "")), NOT_FOUND)
    start_response(status, headers)
    return [body]
