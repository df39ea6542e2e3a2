"""Probes, metrics, schema, docs, admin and the one JSON error shape."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_health_touches_no_dependency(client: Client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_ready_checks_database_and_redis(client: Client):
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"primary": "ok", "redis": "ok"}}


def test_metrics_exports_request_counters_by_kind(client: Client):
    client.get("/health")
    client.get("/api/videos")
    body = client.get("/metrics").content.decode()
    assert "# TYPE http_requests_total counter" in body
    assert 'kind="probe"' in body and 'kind="api"' in body
    assert 'view="api/videos"' in body
    assert "http_request_duration_seconds_bucket" in body


PUBLIC = {"REMOTE_ADDR": "203.0.113.9"}


def _metrics_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.content[:200]
    assert response.json()["error"]["code"] == code
    assert b"http_requests_total" not in response.content


def test_metrics_are_not_served_to_the_public(client: Client, settings):
    _metrics_error(client.get("/metrics", **PUBLIC), 403, "permission_denied")
    # A forwarded address is written by the sender: never believed, even behind a trusted proxy.
    settings.TRUSTED_PROXY_COUNT = 1
    _metrics_error(
        client.get("/metrics", HTTP_X_FORWARDED_FOR="127.0.0.1", **PUBLIC), 403, "permission_denied"
    )
    # The pod's own loopback (a sidecar, an operator's port-forward) may read them.
    assert client.get("/metrics").status_code == 200


def test_metrics_answer_the_allowed_networks(client: Client, settings):
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8", "2001:db8::/32"]

    assert client.get("/metrics", REMOTE_ADDR="10.42.7.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="2001:db8::5").status_code == 200
    _metrics_error(client.get("/metrics", REMOTE_ADDR="11.0.0.1"), 403, "permission_denied")
    _metrics_error(client.get("/metrics"), 403, "permission_denied")  # loopback no longer listed


def test_metrics_answer_the_scrapers_bearer_token(client: Client, settings):
    settings.METRICS_TOKEN = "scrape-9f2c1e7a"

    missing = client.get("/metrics", **PUBLIC)
    _metrics_error(missing, 401, "not_authenticated")
    assert missing["WWW-Authenticate"] == 'Bearer realm="metrics"'
    _metrics_error(
        client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-0000", **PUBLIC), 401, "not_authenticated"
    )
    _metrics_error(
        client.get("/metrics", HTTP_AUTHORIZATION="scrape-9f2c1e7a", **PUBLIC), 401, "not_authenticated"
    )
    granted = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-9f2c1e7a", **PUBLIC)
    assert granted.status_code == 200
    assert b"# TYPE http_requests_total counter" in granted.content


def test_with_a_metrics_port_the_public_port_has_no_metrics(client: Client, settings):
    settings.METRICS_PORT = 9100

    _metrics_error(client.get("/metrics", SERVER_PORT="8000"), 404, "not_found")
    assert client.get("/metrics", SERVER_PORT="9100").status_code == 200
    assert client.get("/health", SERVER_PORT="8000").status_code == 200


def test_a_mistyped_metrics_network_stops_the_start(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    from settings.base import env_networks

    monkeypatch.setenv("METRICS_ALLOWED_NETWORKS", "10.0.0.0/8, 10.0.0.300/32")
    with pytest.raises(ImproperlyConfigured, match=r"10\.0\.0\.300"):
        env_networks("METRICS_ALLOWED_NETWORKS")


def test_schema_and_docs(client: Client):
    schema = client.get("/api/schema", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    document = schema.json()
    assert document["openapi"].startswith("3.")
    for path in (
        "/api/videos",
        "/api/videos/{video_id}",
        "/api/users/{user_id}/videos",
        "/api/videos/create",
    ):
        assert path in document["paths"], path
    docs = client.get("/api/docs")
    assert docs.status_code == 200
    assert b"swagger" in docs.content.lower()
    assert b"cdn.jsdelivr" not in docs.content  # assets ship with the app


def test_admin_login_page_has_its_static_files(client: Client):
    response = client.get("/admin/login/")
    assert response.status_code == 200
    assert b"/static/admin/css/" in response.content


def test_unknown_api_path_is_json_404(client: Client):
    response = client.get("/api/no/such/thing")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "Not found."}}


def test_method_not_allowed_is_json(client: Client):
    response = client.delete("/api/videos")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert "GET" in response["Allow"]


def test_unexpected_error_is_json_500_without_traceback(monkeypatch):
    from videos import selectors

    def explode(**kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(selectors, "video_list_public", explode)
    client = Client(raise_request_exception=False)
    response = client.get("/api/videos")
    assert response.status_code == 500
    assert response.json() == {"error": {"code": "server_error", "message": "An unexpected error occurred."}}
    assert b"secret internals" not in response.content


def test_unsupported_media_type_is_json_415(client: Client):
    response = client.post("/api/videos", data="<x/>", content_type="application/xml")
    assert response.status_code in (401, 415)
    assert "error" in response.json()


def test_detailed_health_is_for_staff_only(client: Client, staff_user):
    anonymous = client.get("/health/detail")
    assert anonymous.status_code == 302
    assert "/admin/login/" in anonymous["Location"]
    client.force_login(staff_user)
    page = client.get("/health/detail?format=json")
    assert page.status_code == 200, page.content
    checks = page.json()
    assert any("Database" in name and "default" in name for name in checks)
    assert all(state == "OK" for name, state in checks.items() if "Database" in name)


def test_probes_answer_whatever_the_host_header(client: Client, settings):
    settings.ALLOWED_HOSTS = ["api.example.com"]
    for path in ("/health", "/ready", "/metrics"):
        assert client.get(path, HTTP_HOST="10.1.2.3:8000").status_code == 200, path
    # Everything else still checks the host.
    assert client.get("/api/videos", HTTP_HOST="10.1.2.3:8000").status_code == 400
