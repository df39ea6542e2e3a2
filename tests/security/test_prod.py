"""settings.prod as it really answers: a gunicorn with the production settings behind a TLS proxy
(X-Forwarded-Proto), checked on real responses."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.security.conftest import live_database_url
from tests.support.processes import base_env, gunicorn

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

HOST = "api.videoplatform.test"
HTTPS = {"Host": HOST, "X-Forwarded-Proto": "https"}


@pytest.fixture(scope="module")
def prod(tmp_path_factory: pytest.TempPathFactory, django_db_setup: Any) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("prod")
    env = base_env(
        DJANGO_SETTINGS_MODULE="settings.prod",
        SECRET_KEY=secrets.token_urlsafe(64),
        # 127.0.0.1: how the test helper waits for the server to come up.
        ALLOWED_HOSTS=f"{HOST},127.0.0.1",
        DATABASE_URL=live_database_url(),
        REDIS_URL=os.environ["REDIS_URL"],
        SUBSCRIPTIONS_PAYMENT_GATEWAY="subscriptions.billing.ClosedPaymentGateway",
        VAR_DIR=str(folder / "var"),
    )
    with gunicorn(env) as url:
        yield url


def test_https_answers_carry_the_security_headers(prod: str) -> None:
    for path in ("/api/subscriptions/plans", "/api/videos/vid_missing", "/api/auth/me"):
        response = httpx.get(prod + path, headers=HTTPS)
        assert response.status_code in (200, 401, 404), (path, response.status_code)
        headers = response.headers
        assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "same-origin"
        assert headers["Cross-Origin-Opener-Policy"] == "same-origin"


def test_plain_http_is_redirected_to_https(prod: str) -> None:
    response = httpx.get(prod + "/api/subscriptions/plans?page=1", headers={"Host": HOST})
    assert response.status_code == 301
    assert response.headers["Location"] == f"https://{HOST}/api/subscriptions/plans?page=1"
    assert "Strict-Transport-Security" not in response.headers  # HSTS only over HTTPS


@pytest.mark.parametrize("path", ["/health", "/ready", "/metrics"])
def test_probes_answer_over_plain_http(prod: str, path: str) -> None:
    response = httpx.get(prod + path, headers={"Host": HOST})
    assert response.status_code == 200, response.text[:200]


@pytest.mark.parametrize("path", ["/health", "/ready"])
def test_probes_answer_to_the_pod_address(prod: str, path: str) -> None:
    """The kubelet probes the pod's IP: its Host header is not one of ALLOWED_HOSTS."""
    response = httpx.get(prod + path, headers={"Host": "10.1.2.3:8000"})
    assert response.status_code == 200, response.text[:200]


def test_unknown_hosts_are_refused(prod: str) -> None:
    response = httpx.get(prod + "/api/subscriptions/plans", headers={**HTTPS, "Host": "evil.example"})
    assert response.status_code == 400


def test_errors_reveal_nothing(prod: str) -> None:
    """(Secure cookies are settings that ``check --deploy`` verifies: tests/platform/test_settings.py.)"""
    page = httpx.get(prod + "/no/such/page", headers=HTTPS)
    assert page.status_code == 404
    assert (
        "Traceback" not in page.text and "DEBUG" not in page.text and "urlpatterns" not in page.text.lower()
    )
    api = httpx.get(prod + "/api/no/such/thing", headers=HTTPS)
    assert api.status_code == 404 and api.json() == {"error": {"code": "not_found", "message": "Not found."}}
