"""The permission matrix: anonymous, user, owner and staff against every route and method.

Routes are read from the URL conf, so an endpoint that lands without a row in MATRIX fails
``test_every_route_has_a_row``: deciding who may call it is part of adding it. API routes are
called with real bearer tokens; pages outside the API with a browser session. The owner's video
is private, so a user who is not its owner must not learn that it exists (404, not 403).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from tests.factories import DEFAULT_PASSWORD
from tests.security.conftest import ROLES, World

# (route, method) -> the status for (anonymous, user, owner, staff).
MATRIX: dict[tuple[str, str], tuple[int, int, int, int]] = {
    # Accounts: registering and logging in ignore the credentials sent along.
    ("api/auth/register", "POST"): (201, 201, 201, 201),
    ("api/auth/login", "POST"): (200, 200, 200, 200),
    ("api/auth/logout", "POST"): (401, 204, 204, 204),
    ("api/auth/me", "GET"): (401, 200, 200, 200),
    ("api/auth/me", "PATCH"): (401, 200, 200, 200),
    # The inbox is private, staff included: another user's notification does not exist.
    ("api/notifications", "GET"): (401, 200, 200, 200),
    ("api/notifications/read-all", "POST"): (401, 200, 200, 200),
    ("api/notifications/<str:notification_id>/read", "POST"): (401, 404, 200, 404),
    # The catalogue: the owner's private video.
    ("api/videos", "GET"): (200, 200, 200, 200),
    ("api/videos", "POST"): (401, 201, 201, 201),
    ("api/videos/create", "POST"): (401, 201, 201, 201),
    ("api/videos/<str:video_id>", "GET"): (404, 404, 200, 200),
    ("api/videos/<str:video_id>", "PATCH"): (401, 404, 200, 200),
    ("api/videos/<str:video_id>", "DELETE"): (401, 404, 204, 204),
    ("api/videos/<str:video_id>/upload", "PUT"): (401, 404, 202, 202),
    ("api/videos/<str:video_id>/upload/complete", "POST"): (401, 404, 409, 409),
    ("api/videos/<str:video_id>/media", "GET"): (401, 404, 200, 200),
    ("api/videos/<str:video_id>/analytics", "GET"): (401, 404, 200, 200),
    ("api/videos/<str:video_id>/recommendations", "GET"): (404, 404, 200, 200),
    ("api/videos/<str:video_id>/stream", "GET"): (404, 404, 409, 409),
    # A beacon about the owner's private video: only those who may see it may report on it.
    ("api/playback/events", "POST"): (404, 404, 202, 202),
    ("api/users/<str:user_id>/videos", "GET"): (200, 200, 200, 200),
    ("api/search", "GET"): (200, 200, 200, 200),
    # Subscriptions: only one's own, found through "me" (there is no id to guess).
    ("api/subscriptions", "POST"): (401, 201, 201, 201),
    ("api/subscriptions/plans", "GET"): (200, 200, 200, 200),
    ("api/subscriptions/me", "GET"): (401, 404, 200, 404),
    ("api/subscriptions/me/cancel", "POST"): (401, 404, 200, 404),
    # Webhook endpoints: one's own (staff: all); another user's does not exist.
    ("api/webhooks", "GET"): (401, 200, 200, 200),
    ("api/webhooks", "POST"): (401, 201, 201, 201),
    ("api/webhooks/event-types", "GET"): (401, 200, 200, 200),
    ("api/webhooks/<str:endpoint_id>", "GET"): (401, 404, 200, 200),
    ("api/webhooks/<str:endpoint_id>", "PATCH"): (401, 404, 200, 200),
    ("api/webhooks/<str:endpoint_id>", "DELETE"): (401, 404, 204, 204),
    ("api/webhooks/<str:endpoint_id>/roll-secret", "POST"): (401, 404, 200, 200),
    ("api/webhooks/<str:endpoint_id>/deliveries", "GET"): (401, 404, 200, 200),
    ("api/webhooks/<str:endpoint_id>/deliveries/<str:delivery_id>/redeliver", "POST"): (401, 404, 202, 202),
    # Live: the owner's private live stream (ending an idle one is a 409 for those who may).
    ("api/live", "POST"): (401, 201, 201, 201),
    ("api/live/<str:live_id>", "GET"): (404, 404, 200, 200),
    ("api/live/<str:live_id>/end", "POST"): (401, 404, 409, 409),
    ("api/live/<str:live_id>/reset-key", "POST"): (401, 404, 200, 200),
    ("api/live/<str:live_id>/stream", "GET"): (404, 404, 409, 409),
    ("api/users/<str:user_id>/live", "GET"): (200, 200, 200, 200),
    ("api/schema", "GET"): (200, 200, 200, 200),
    ("api/docs", "GET"): (200, 200, 200, 200),
    # Outside the API (browser sessions).
    ("", "GET"): (200, 200, 200, 200),
    ("health", "GET"): (200, 200, 200, 200),
    ("ready", "GET"): (200, 200, 200, 200),
    ("health/detail", "GET"): (302, 302, 302, 200),
    ("metrics", "GET"): (200, 200, 200, 200),
    ("watch/<str:video_id>", "GET"): (404, 404, 200, 200),
    ("watch/live/<str:live_id>", "GET"): (404, 404, 200, 200),
    # A signed media URL whose signature is wrong: refused whoever asks.
    ("media/s/<str:token>/<path:path>", "GET"): (403, 403, 403, 403),
    ("live/s/<str:token>/<path:path>", "GET"): (403, 403, 403, 403),
    # The ingest's hooks: only with the shared secret, which no viewer has.
    ("internal/live/hooks/publish", "GET"): (403, 403, 403, 403),
    ("internal/live/hooks/publish-done", "GET"): (403, 403, 403, 403),
    ("internal/live/hooks/update", "GET"): (403, 403, 403, 403),
    ("internal/live/hooks/sessions/<str:session_id>/config", "GET"): (403, 403, 403, 403),
    ("internal/live/hooks/sessions/<str:session_id>/ready", "GET"): (403, 403, 403, 403),
    ("internal/live/hooks/sessions/<str:session_id>/recordings", "GET"): (403, 403, 403, 403),
}
# The admin has its own test (tests/security/test_admin_and_csrf.py): its routes are Django's.
EXCLUDED_PREFIXES = ("admin/",)
STANDARD_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _walk(patterns: list[Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            yield route, pattern.callback


def _methods(callback: Any) -> list[str]:
    view_class = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
    if view_class is None:
        return ["GET"]  # function views: pages and probes, all GET
    return [
        m.upper()
        for m in view_class.http_method_names
        if m not in ("head", "options") and hasattr(view_class, m)
    ]


def routes() -> dict[tuple[str, str], Any]:
    found: dict[tuple[str, str], Any] = {}
    for route, callback in _walk(get_resolver().url_patterns):
        if route.startswith(EXCLUDED_PREFIXES):
            continue
        for method in _methods(callback):
            found[(route, method)] = callback
    return found


def test_every_route_has_a_row() -> None:
    found = set(routes())
    missing = sorted(found - set(MATRIX))
    stale = sorted(set(MATRIX) - found)
    assert not missing, f"routes with no row in the permission matrix: {missing}"
    assert not stale, f"rows for routes that no longer exist: {stale}"


# --- how each route is called ------------------------------------------------------------------


def _body(route: str, method: str, world: World, role: str) -> dict[str, Any] | None:
    unique = uuid.uuid4().hex[:8]
    bodies: dict[tuple[str, str], Callable[[], dict[str, Any]]] = {
        ("api/auth/register", "POST"): lambda: {
            "username": f"new_{role}_{unique}",
            "email": f"new_{role}_{unique}@example.com",
            "password": f"Reg-{uuid.uuid4().hex}",
        },
        ("api/auth/login", "POST"): lambda: {"username": world.owner.username, "password": DEFAULT_PASSWORD},
        ("api/auth/me", "PATCH"): lambda: {"display_name": f"Renamed {unique}"},
        ("api/videos", "POST"): lambda: {"title": f"New {unique}"},
        ("api/videos/create", "POST"): lambda: {"title": f"New {unique}"},
        ("api/videos/<str:video_id>", "PATCH"): lambda: {"title": f"Changed {unique}"},
        ("api/subscriptions", "POST"): lambda: {"plan": "premium"},
        ("api/playback/events", "POST"): lambda: {
            "view_id": str(uuid.uuid4()),
            "video_id": world.video.pk,
            "events": [{"type": "stop"}],
        },
        ("api/webhooks", "POST"): lambda: {"url": f"https://hooks.example.com/{unique}", "events": ["*"]},
        ("api/webhooks/<str:endpoint_id>", "PATCH"): lambda: {"events": ["video.ready"]},
        ("api/live", "POST"): lambda: {"title": f"Live {unique}"},
    }
    make = bodies.get((route, method))
    return make() if make else None


def _path(route: str, world: World) -> str:
    from streaming import signing

    token = signing.token_for(signing.StreamGrant(world.video.pk, "run", 1080, 4_102_444_800))
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    values = {
        "<str:video_id>": world.video.pk,
        "<str:user_id>": world.owner.pk,
        "<str:notification_id>": world.notification.pk,
        "<str:endpoint_id>": world.webhook.pk,
        "<str:delivery_id>": world.delivery.pk,
        "<str:live_id>": world.live_stream().pk if "<str:live_id>" in route else "",
        "<str:session_id>": "lses_unknown",
        "<str:token>": tampered,
        "<path:path>": "master.m3u8",
    }
    path = "/" + route
    for placeholder, value in values.items():
        path = path.replace(placeholder, str(value))
    return path


QUERIES = {"api/search": {"q": "video"}}


def call(world: World, route: str, method: str, role: str) -> Any:
    path = _path(route, world)
    is_api = route.startswith("api/")
    client = world.api_client(role) if is_api else world.session_client(role)
    if (route, method) == ("api/videos/<str:video_id>/upload", "PUT"):
        return client.generic("PUT", path, world.clip.read_bytes(), content_type="application/octet-stream")
    if method == "GET":
        return client.get(path, QUERIES.get(route, {}))
    body = _body(route, method, world, role)
    return client.generic(method, path, b"" if body is None else _json(body), content_type="application/json")


def _json(body: dict[str, Any]) -> bytes:
    import json

    return json.dumps(body).encode()


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("route", "method"), list(MATRIX))
def test_matrix_cell(world: World, route: str, method: str, role: str) -> None:
    expected = MATRIX[(route, method)][ROLES.index(role)]
    response = call(world, route, method, role)
    assert response.status_code == expected, (
        f"{role} {method} /{route}: {response.status_code}, expected {expected}: {response.content[:300]!r}"
    )
    if route.startswith("api/") and response.status_code >= 400:
        assert response["Content-Type"].startswith("application/json")
        assert "code" in response.json()["error"]


def test_methods_a_route_does_not_have_are_refused(world: World) -> None:
    """Every API route answers 405 to the methods it does not implement (401 first if it needs a user)."""
    implemented: dict[str, set[str]] = {}
    for route, method in routes():
        implemented.setdefault(route, set()).add(method)
    checked = 0
    for route, methods in implemented.items():
        if not route.startswith("api/"):
            continue
        for method in set(STANDARD_METHODS) - methods:
            for role in ("anonymous", "user"):
                response = world.api_client(role).generic(method, _path(route, world))
                allowed = {401, 405} if role == "anonymous" else {405}
                assert response.status_code in allowed, f"{role} {method} /{route}: {response.status_code}"
                checked += 1
    assert checked > 20
