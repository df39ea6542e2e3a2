"""Expired tokens are purged by the management command and the Celery task."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.models import AuthToken
from accounts.tasks import purge_expired_tokens
from tests.accounts.conftest import bearer_client, login

pytestmark = pytest.mark.django_db


def test_purge_deletes_only_expired_tokens(user: Any) -> None:
    live = login(user)["token"]
    login(user)
    login(user)
    expired = AuthToken.objects.order_by("created_at")[1:]
    AuthToken.objects.filter(pk__in=[t.pk for t in expired]).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    out = StringIO()

    call_command("purge_expired_tokens", stdout=out)

    assert "Deleted 2 expired token(s)." in out.getvalue()
    assert AuthToken.objects.count() == 1
    assert bearer_client(live).get("/api/auth/me").status_code == 200
    assert purge_expired_tokens() == 0
