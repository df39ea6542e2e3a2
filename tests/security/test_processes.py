"""Security that must hold across processes: two gunicorn servers (two workers each) and this test
process share one database and one Redis, as pods do.

- a token revoked in one process is refused by every other at once;
- login and registration throttles count attempts made on any server;
- the logs (gunicorn's access log and the application's) never hold a token or a password.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from accounts import services
from accounts.token_cache import token_digest
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.security.conftest import live_database_url
from tests.support.processes import base_env, gunicorn

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ACCOUNT_LIMIT = 4
REGISTRATION_LIMIT = 3


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, django_db_setup: Any) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("servers")
    env = base_env(
        DJANGO_SETTINGS_MODULE="settings.test",
        DATABASE_URL=live_database_url(),
        REDIS_URL=os.environ["REDIS_URL"],
        VAR_DIR=str(folder / "var"),
        LOG_LEVEL="DEBUG",
        LOGIN_FAILURE_LIMIT_ACCOUNT=str(ACCOUNT_LIMIT),
        REGISTRATION_LIMIT_IP=str(REGISTRATION_LIMIT),
    )
    logs = [folder / "a.log", folder / "b.log"]
    with ExitStack() as stack:
        urls = [stack.enter_context(gunicorn(env, workers=2, log=log)) for log in logs]
        yield {"urls": urls, "logs": logs}


def _me(url: str, token: str) -> int:
    return httpx.get(
        f"{url}/api/auth/me", headers={"Authorization": f"Bearer {token}"}, timeout=10
    ).status_code


def _login(url: str, username: str, password: str) -> httpx.Response:
    return httpx.post(f"{url}/api/auth/login", json={"username": username, "password": password}, timeout=10)


def test_a_revoked_token_is_refused_by_every_process(servers: dict[str, Any]) -> None:
    a, b = servers["urls"]
    user = UserFactory()
    token = _login(a, user.username, DEFAULT_PASSWORD).json()["token"]
    # Used on both servers, so every worker has seen (and could have kept) the token.
    assert [_me(url, token) for url in (a, b) for _ in range(6)] == [200] * 12

    assert httpx.post(f"{b}/api/auth/logout", headers={"Authorization": f"Bearer {token}"}).status_code == 204
    assert [_me(url, token) for url in (a, b) for _ in range(6)] == [401] * 12


def test_a_token_revoked_outside_the_servers_is_refused_at_once(servers: dict[str, Any]) -> None:
    a, b = servers["urls"]
    user = UserFactory()
    token = _login(a, user.username, DEFAULT_PASSWORD).json()["token"]
    assert [_me(url, token) for url in (a, b) for _ in range(4)] == [200] * 8

    services.token_revoke(digest=token_digest(token))  # e.g. the admin, or another pod
    assert [_me(url, token) for url in (a, b) for _ in range(4)] == [401] * 8


def test_deactivating_a_user_revokes_their_tokens_everywhere(servers: dict[str, Any]) -> None:
    a, b = servers["urls"]
    user = UserFactory()
    token = _login(b, user.username, DEFAULT_PASSWORD).json()["token"]
    assert _me(a, token) == 200
    services.users_deactivate(user_ids=[user.pk])
    assert [_me(url, token) for url in (a, b) for _ in range(4)] == [401] * 8


def test_failed_logins_are_counted_across_servers(servers: dict[str, Any]) -> None:
    a, b = servers["urls"]
    user = UserFactory()
    statuses = [
        _login((a, b)[i % 2], user.username, "wrong password").status_code for i in range(ACCOUNT_LIMIT)
    ]
    assert statuses == [401] * ACCOUNT_LIMIT
    for url in (a, b):
        refused = _login(url, user.username, DEFAULT_PASSWORD)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "throttled"
        assert int(refused.headers["Retry-After"]) >= 1


def test_registrations_are_counted_across_servers(servers: dict[str, Any]) -> None:
    a, b = servers["urls"]

    def register(url: str) -> int:
        name = f"reg_{uuid.uuid4().hex[:10]}"
        body = {"username": name, "email": f"{name}@example.com", "password": f"Pw-{uuid.uuid4().hex}"}
        return httpx.post(f"{url}/api/auth/register", json=body, timeout=10).status_code

    statuses = [register((a, b)[i % 2]) for i in range(REGISTRATION_LIMIT)]
    assert statuses == [201] * REGISTRATION_LIMIT
    assert [register(a), register(b)] == [429, 429]


def _logged(logs: list[Path]) -> str:
    time.sleep(0.5)  # the access log is written after the answer
    return "\n".join(path.read_text(errors="replace") for path in logs)


def test_no_token_or_password_reaches_the_logs(servers: dict[str, Any]) -> None:
    a, b = servers["urls"]
    name = f"logs_{uuid.uuid4().hex[:8]}"
    password = f"Secret-{uuid.uuid4().hex}"
    wrong = f"Wrong-{uuid.uuid4().hex}"
    register = httpx.post(
        f"{a}/api/auth/register",
        json={"username": name, "email": f"{name}@example.com", "password": password},
        timeout=10,
    )
    first_token = register.json()["token"]
    assert _login(b, name, wrong).status_code == 401
    second_token = _login(a, name, password).json()["token"]
    auth = {"Authorization": f"Bearer {second_token}"}
    for url in (a, b):
        assert httpx.get(f"{url}/api/auth/me", headers=auth).status_code == 200
        httpx.post(f"{url}/api/videos", json={"title": "logged?"}, headers=auth)
        httpx.get(f"{url}/api/videos/does-not-exist", headers=auth)
        httpx.patch(
            f"{url}/api/auth/me", content=b"{not json", headers={**auth, "Content-Type": "application/json"}
        )
    # A token sent where it does not belong (a typo, a bad header) is not echoed either.
    httpx.get(f"{a}/api/auth/me", headers={"Authorization": f"Bearer {second_token}x"})
    httpx.get(f"{a}/api/auth/me", headers={"Authorization": f"Token {second_token}"})
    assert httpx.post(f"{b}/api/auth/logout", headers=auth).status_code == 204
    assert _me(a, second_token) == 401

    logged = _logged(servers["logs"])
    assert "/api/auth/login" in logged and "/api/auth/me" in logged  # the logs were captured
    for secret in (password, wrong, first_token, second_token, first_token[4:], second_token[4:]):
        assert secret not in logged
    for record in (json.loads(line) for line in logged.splitlines() if line.startswith("{")):
        assert "authorization" not in json.dumps(record).lower()
