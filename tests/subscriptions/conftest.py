"""Fixtures for the subscriptions tests.

Requests are authenticated with ``force_authenticate`` so these tests do not depend on the login
endpoint (accounts).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from rest_framework.test import APIClient

from subscriptions.models import Plan

from .gateways import BlockingGateway, RecordingGateway


def client_for(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user=user)
    return client


@pytest.fixture
def auth_client(user: Any) -> APIClient:
    return client_for(user)


@pytest.fixture
def default_plans(db: Any) -> dict[str, Plan]:
    """The plans the data migration created, by code."""
    return {plan.code: plan for plan in Plan.objects.all()}


@pytest.fixture
def standard(default_plans: dict[str, Plan]) -> Plan:
    return default_plans["standard"]


@pytest.fixture
def premium(default_plans: dict[str, Plan]) -> Plan:
    return default_plans["premium"]


@pytest.fixture
def recording_gateway(settings: Any) -> type[RecordingGateway]:
    settings.SUBSCRIPTIONS_PAYMENT_GATEWAY = "tests.subscriptions.gateways.RecordingGateway"
    RecordingGateway.reset()
    return RecordingGateway


@pytest.fixture
def blocking_gateway(settings: Any) -> Iterator[type[BlockingGateway]]:
    settings.SUBSCRIPTIONS_PAYMENT_GATEWAY = "tests.subscriptions.gateways.BlockingGateway"
    BlockingGateway.reset()
    yield BlockingGateway
    BlockingGateway.release.set()  # never leave a thread waiting
