"""Shared fixtures. The test command points DATABASE_URL and REDIS_URL at real servers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import caches
from rest_framework.test import APIClient

from tests.factories import DEFAULT_PASSWORD, UserFactory


@pytest.fixture(autouse=True)
def _clear_caches() -> Iterator[None]:
    from videoplatform.cache import tiers

    for cache in caches.all():
        cache.clear()
    tiers().clear_local()  # this process's L1 (L2 was just flushed with the caches above)
    yield


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def user(db: Any) -> Any:
    return UserFactory()


@pytest.fixture
def other_user(db: Any) -> Any:
    return UserFactory()


@pytest.fixture
def staff_user(db: Any) -> Any:
    return UserFactory(is_staff=True, is_superuser=True)


def login_client(user: Any, password: str = DEFAULT_PASSWORD) -> APIClient:
    """A client holding a real bearer token obtained through the login endpoint."""
    client = APIClient()
    response = client.post(
        "/api/auth/login", {"username": user.username, "password": password}, format="json"
    )
    assert response.status_code == 200, response.content
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['token']}")
    return client


@pytest.fixture
def user_client(user: Any) -> APIClient:
    return login_client(user)


@pytest.fixture
def other_client(other_user: Any) -> APIClient:
    return login_client(other_user)


@pytest.fixture
def staff_client(staff_user: Any) -> APIClient:
    return login_client(staff_user)
