"""Helpers for the accounts tests: tokens obtained through the real endpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from tests.factories import DEFAULT_PASSWORD

REPO_ROOT = Path(__file__).resolve().parents[2]

requires_redis = pytest.mark.skipif(
    not settings.REDIS_URL, reason="needs REDIS_URL: without Redis every token check reads the database"
)


def login(user: Any, *, password: str = DEFAULT_PASSWORD, **extra: Any) -> dict[str, Any]:
    response = APIClient().post(
        "/api/auth/login", {"username": user.username, "password": password}, format="json", **extra
    )
    assert response.status_code == 200, response.content
    return response.json()


def post_login(username: str, password: str, **extra: Any) -> Any:
    body = {"username": username, "password": password}
    return APIClient().post("/api/auth/login", body, format="json", **extra)


def bearer_client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def error_code(response: Any) -> str:
    return response.json()["error"]["code"]


def run_in_other_process(script: str, *args: str) -> dict[str, Any]:
    """Runs ``script`` in a new Python process set up on the same database and Redis.

    The script sees ``ARGS`` (the extra arguments) and sets ``result`` to something JSON-able.
    Only committed data is visible to it: use it from ``django_db(transaction=True)`` tests.
    """
    db = connection.settings_dict
    database_url = f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": settings.REDIS_URL,
        "DJANGO_SETTINGS_MODULE": "settings.test",
    }
    program = (
        "import json, sys, django\n"
        "django.setup()\n"
        "ARGS = sys.argv[1:]\n"
        "result = None\n"
        f"{script}\n"
        "print(json.dumps(result))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", program, *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])
