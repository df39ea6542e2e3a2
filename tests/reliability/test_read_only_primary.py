"""A write that reaches a server which no longer takes writes (a failover's old primary, a pooler
not yet re-pointed) is an outage: 503 JSON with Retry-After, never a 500, and nothing is written."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from videos.models import Video


# Autocommit, as in production: the connection setting applies to the request's own transactions.
@pytest.mark.django_db(transaction=True)
def test_a_write_refused_as_read_only_is_a_503_with_retry_after(user_client: APIClient, user: Any) -> None:
    with connection.cursor() as cursor:
        # The connection now behaves as a standby's would: every write is refused with 25006.
        cursor.execute("SET default_transaction_read_only = on")
    try:
        response = user_client.post("/api/videos", {"title": "refused"}, format="json")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET default_transaction_read_only = off")
    assert response.status_code == 503, response.content
    assert response["Retry-After"] == "3"
    assert response.json()["error"]["code"] == "service_unavailable"
    assert not Video.objects.filter(title="refused").exists()
