"""One domain error base, mapped once: every refusal a service or selector raises reaches the
client as ``{"error": {"code", "message"}}`` with the status its class declares."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.services import InvalidCredentials
from subscriptions.exceptions import (
    AlreadyCanceled,
    NoCurrentSubscription,
    PaymentDeclined,
    PlanNotSubscribable,
)
from videoplatform.api.errors import api_exception_handler
from videoplatform.errors import DomainError, NotFound


class Teapot(DomainError):
    status_code = 418
    code = "teapot"
    default_message = "I am a teapot."


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (Teapot(), 418, "teapot"),
        (Teapot("Short and stout."), 418, "teapot"),
        (NotFound(), 404, "not_found"),
        (PlanNotSubscribable(), 400, "plan_not_subscribable"),
        (PaymentDeclined(), 402, "payment_declined"),
        (NoCurrentSubscription(), 404, "no_subscription"),
        (AlreadyCanceled(), 409, "already_canceled"),
        (InvalidCredentials(), 401, "invalid_credentials"),
    ],
)
def test_the_handler_renders_each_domain_error_with_its_status_and_code(
    error: DomainError, status: int, code: str
):
    response = api_exception_handler(error, {})
    assert response is not None
    assert response.status_code == status
    assert response.data == {"error": {"code": code, "message": error.message}}


def test_a_refused_login_says_how_to_authenticate():
    response = api_exception_handler(InvalidCredentials(), {})
    assert response is not None and response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
def test_a_missing_video_is_a_json_404_in_the_api_and_a_page_404_outside_it(api_client: Any):
    answer = api_client.get("/api/videos/vid_missing")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"
    page = api_client.get("/watch/vid_missing")
    assert page.status_code == 404


@pytest.mark.django_db
def test_a_second_cancel_is_a_409_with_its_code(user: Any, user_client: Any):
    from tests.factories import SubscriptionFactory

    SubscriptionFactory(user=user)
    assert user_client.post("/api/subscriptions/me/cancel").status_code == 200
    again = user_client.post("/api/subscriptions/me/cancel")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_canceled"
