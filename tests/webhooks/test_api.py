"""The webhooks API: endpoints per user (staff: all), secrets shown once, the delivery log, redelivery."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from django.db import transaction
from django.test import override_settings
from rest_framework.test import APIClient
from standardwebhooks import Webhook

from tests.webhooks.conftest import run_due
from tests.webhooks.receiver import Receiver
from videos import services as video_services
from webhooks.models import Delivery, Endpoint, Event
from webhooks.targets import is_public_address

pytestmark = pytest.mark.django_db

PRODUCTION = {"WEBHOOKS_ALLOW_HTTP": False, "WEBHOOKS_ALLOW_PRIVATE_TARGETS": False}


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert body["error"]["message"]
    return dict(body["error"])


def test_create_shows_the_secret_once_and_pings(user_client: APIClient, receiver: Receiver) -> None:
    response = user_client.post(
        "/api/webhooks", {"url": receiver.url(), "events": ["video.ready"]}, format="json"
    )
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["secret"].startswith("whsec_") and created["active"] is True
    assert created["events"] == ["video.ready"] and created["url"] == receiver.url()
    assert response["Cache-Control"] == "private, no-store"

    shown = user_client.get(f"/api/webhooks/{created['id']}").json()
    assert "secret" not in shown and shown["id"] == created["id"]
    listed = user_client.get("/api/webhooks").json()
    assert [item["id"] for item in listed["data"]] == [created["id"]] and "secret" not in listed["data"][0]
    assert listed["pagination"]["total"] == 1

    run_due()
    [ping] = receiver.received()
    assert Webhook(created["secret"]).verify(ping.body, ping.headers)["type"] == "ping"


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"url": "ftp://example.com/hook", "events": ["*"]}, "insecure_url", "url"),
        ({"url": "http://" + "a" * 2040 + ".com/", "events": ["*"]}, "url_too_long", "url"),
        ({"url": "http://user:pw@example.com/", "events": ["*"]}, "invalid_url", "url"),
        ({"url": "not a url", "events": ["*"]}, "invalid_url", "url"),
        ({"url": "https://example.com/", "events": ["video.exploded"]}, "unknown_event_type", "events"),
        ({"url": "https://example.com/", "events": []}, "unknown_event_type", "events"),
        ({"url": "https://example.com/", "events": "video.ready"}, "validation_error", "events"),
        ({"url": "https://example.com/", "events": ["*"], "secret": "mine"}, "validation_error", "secret"),
        ({"url": 42, "events": ["*"]}, "validation_error", "url"),
        ({"events": ["*"]}, "validation_error", "url"),
    ],
)
def test_create_rejects_bad_input_and_changes_nothing(
    user_client: APIClient, body: dict[str, Any], code: str, field: str
) -> None:
    error = assert_error(user_client.post("/api/webhooks", body, format="json"), 400, code)
    assert field in error["fields"]
    assert not Endpoint.objects.exists() and not Event.objects.exists()


@override_settings(**PRODUCTION)
@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://hooks.example.com/", "insecure_url"),
        ("https://127.0.0.1/hook", "private_target"),
        ("https://10.1.2.3/hook", "private_target"),
        ("https://192.168.0.10:8443/hook", "private_target"),
        ("https://169.254.169.254/latest/meta-data", "private_target"),
        ("https://100.64.0.1/", "private_target"),
        ("https://[::1]/hook", "private_target"),
        ("https://[fd00::1]/hook", "private_target"),
        ("https://[::ffff:10.0.0.1]/hook", "private_target"),
        ("https://0.0.0.0/", "private_target"),
        ("https://localhost/hook", "private_target"),
        ("https://metadata.google.internal/", "private_target"),
        ("https://printer.local/", "private_target"),
    ],
)
def test_production_refuses_private_and_plain_http_targets(
    user_client: APIClient, url: str, code: str
) -> None:
    assert_error(user_client.post("/api/webhooks", {"url": url, "events": ["*"]}, format="json"), 400, code)
    assert not Endpoint.objects.exists()


@override_settings(**PRODUCTION)
def test_production_accepts_a_public_https_url(user_client: APIClient) -> None:
    response = user_client.post(
        "/api/webhooks", {"url": "https://93.184.215.14/hook", "events": ["*"]}, format="json"
    )
    assert response.status_code == 201, response.content


def test_the_production_settings_refuse_local_targets() -> None:
    """settings.prod keeps base's values (no override): checked on the modules themselves."""
    import settings.base as base
    import settings.dev as dev
    import settings.test as test_settings

    assert base.WEBHOOKS_ALLOW_HTTP is False and base.WEBHOOKS_ALLOW_PRIVATE_TARGETS is False
    prod_source = (base.BASE_DIR / "settings" / "prod.py").read_text()
    assert "WEBHOOKS_ALLOW" not in prod_source
    assert dev.WEBHOOKS_ALLOW_PRIVATE_TARGETS and test_settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:93.184.215.14", True),
        ("2002:0a00:0001::1", False),  # 6to4 around 10.0.0.1
    ],
)
def test_public_addresses(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


def test_another_users_endpoint_is_not_found_and_staff_see_all(
    user: Any, user_client: APIClient, other_client: APIClient, staff_client: APIClient, receiver: Receiver
) -> None:
    created = user_client.post(
        "/api/webhooks", {"url": receiver.url(), "events": ["*"]}, format="json"
    ).json()
    path = f"/api/webhooks/{created['id']}"
    for response in (
        other_client.get(path),
        other_client.patch(path, {"active": False}, format="json"),
        other_client.delete(path),
        other_client.post(f"{path}/roll-secret"),
        other_client.get(f"{path}/deliveries"),
    ):
        assert_error(response, 404, "not_found")
    assert other_client.get("/api/webhooks").json()["data"] == []
    assert Endpoint.objects.get().active

    assert [item["id"] for item in staff_client.get("/api/webhooks").json()["data"]] == [created["id"]]
    assert staff_client.get(path).json()["owner_id"] == user.pk
    assert_error(APIClient().get("/api/webhooks"), 401, "not_authenticated")


def test_update_and_delete(user_client: APIClient, receiver: Receiver) -> None:
    created = user_client.post(
        "/api/webhooks", {"url": receiver.url(), "events": ["*"]}, format="json"
    ).json()
    path = f"/api/webhooks/{created['id']}"
    changed = user_client.patch(
        path, {"events": ["video.ready", "video.ready"], "active": False}, format="json"
    )
    assert changed.status_code == 200, changed.content
    assert changed.json()["events"] == ["video.ready"] and changed.json()["active"] is False
    assert_error(user_client.patch(path, {"url": "gopher://x"}, format="json"), 400, "insecure_url")
    assert_error(user_client.patch(path, {"colour": "red"}, format="json"), 400, "validation_error")
    assert Endpoint.objects.get().url == receiver.url()
    assert user_client.delete(path).status_code == 204
    assert not Endpoint.objects.exists()
    assert_error(user_client.get(path), 404, "not_found")


@override_settings(WEBHOOKS_MAX_ENDPOINTS_PER_USER=2)
def test_the_number_of_endpoints_is_limited(user_client: APIClient, receiver: Receiver) -> None:
    for n in range(2):
        assert (
            user_client.post(
                "/api/webhooks", {"url": receiver.url(f"/{n}"), "events": ["*"]}, format="json"
            ).status_code
            == 201
        )
    error = user_client.post("/api/webhooks", {"url": receiver.url("/3"), "events": ["*"]}, format="json")
    assert_error(error, 409, "endpoint_limit_reached")
    assert Endpoint.objects.count() == 2


def test_roll_secret_answers_the_new_secret_once(user_client: APIClient, receiver: Receiver) -> None:
    created = user_client.post(
        "/api/webhooks", {"url": receiver.url(), "events": ["*"]}, format="json"
    ).json()
    rolled = user_client.post(f"/api/webhooks/{created['id']}/roll-secret")
    assert rolled.status_code == 200, rolled.content
    body = rolled.json()
    assert body["secret"].startswith("whsec_") and body["secret"] != created["secret"]
    assert body["previous_secret_expires_at"]
    assert "secret" not in user_client.get(f"/api/webhooks/{created['id']}").json()
    assert_error(
        user_client.post(f"/api/webhooks/{created['id']}/roll-secret", {"now": 1}, format="json"),
        400,
        "validation_error",
    )


def test_the_delivery_log_and_redelivery(user: Any, user_client: APIClient, receiver: Receiver) -> None:
    created = user_client.post(
        "/api/webhooks", {"url": receiver.url(), "events": ["video.created"]}, format="json"
    ).json()
    receiver.script("/hook", (200, 0), (410, 0))  # the ping passes, the event is refused
    with transaction.atomic():
        video_services.video_create(owner=user, title="Logged")
    run_due(wait=0.5)
    log = user_client.get(f"/api/webhooks/{created['id']}/deliveries").json()
    assert log["pagination"]["total"] == 2
    latest = log["data"][0]
    assert latest["event"]["type"] == "video.created" and latest["status"] == "pending"
    assert latest["attempts"] == 1 and latest["response_status"] == 410 and latest["response_ms"] is not None
    assert latest["next_attempt_at"] is not None and latest["last_error"] == "HTTP 410"
    failed_only = user_client.get(f"/api/webhooks/{created['id']}/deliveries?status=succeeded").json()
    assert [d["event"]["type"] for d in failed_only["data"]] == ["ping"]
    assert_error(
        user_client.get(f"/api/webhooks/{created['id']}/deliveries?status=lost"), 400, "validation_error"
    )

    # Redeliver the ping (succeeded): the same event id arrives again.
    ping = log["data"][1]
    response = user_client.post(f"/api/webhooks/{created['id']}/deliveries/{ping['id']}/redeliver")
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "pending"
    run_due(wait=0.5)
    ids = [r.id for r in receiver.received() if r.payload["type"] == "ping"]
    assert len(ids) == 2 and ids[0] == ids[1] == ping["event"]["id"]
    assert Delivery.objects.get(pk=ping["id"]).status == "succeeded"

    assert_error(
        user_client.post(f"/api/webhooks/{created['id']}/deliveries/whd_nope/redeliver"), 404, "not_found"
    )
    user_client.patch(f"/api/webhooks/{created['id']}", {"active": False}, format="json")
    assert_error(
        user_client.post(f"/api/webhooks/{created['id']}/deliveries/{ping['id']}/redeliver"),
        409,
        "endpoint_disabled",
    )


def test_event_types(user_client: APIClient) -> None:
    types = [item["type"] for item in user_client.get("/api/webhooks/event-types").json()["data"]]
    assert {"video.created", "video.ready", "video.failed", "video.deleted"} <= set(types)
    assert {"live.connected", "live.active", "live.disconnected", "live.ended"} <= set(types)
    assert {"subscription.created", "subscription.canceled"} <= set(types)
