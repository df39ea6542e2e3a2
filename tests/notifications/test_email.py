"""Transactional email through a real SMTP server started by the test: text and HTML parts;
a failing server is retried 5 times with backoff, then the email is recorded as failed."""

from __future__ import annotations

import email
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from accounts.models import EmailDelivery
from tests.jobs.support import celery_worker
from tests.support.processes import free_port, wait_until
from videoplatform.jobs.models import TaskFailure

pytestmark = pytest.mark.django_db(transaction=True)


class Mailbox:
    """An SMTP handler: accepts, delays ("451 try later") or refuses ("550") every message."""

    def __init__(self) -> None:
        self.mode = "accept"
        self.messages: list[Message] = []
        self.attempts = 0

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if self.mode == "refuse":
            self.attempts += 1
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.attempts += 1
        if self.mode == "busy":
            return "451 4.3.0 Mail server busy, try again later"
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 Message accepted"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, port
    controller.stop()


@pytest.fixture
def mail_worker(redis_broker: str, tmp_path: Path, smtp: tuple[Mailbox, int]) -> Iterator[Any]:
    with celery_worker(
        redis_broker,
        tmp_path,
        queues="email",
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(smtp[1]),
        EMAIL_TIMEOUT="5",
    ) as worker:
        yield worker


def register(api_client: Any, username: str) -> None:
    response = api_client.post(
        "/api/auth/register",
        {"username": username, "email": f"{username}@example.com", "password": "a-Long-passw0rd!"},
        format="json",
    )
    assert response.status_code == 201


def test_the_welcome_email_reaches_the_server_with_text_and_html(
    mail_worker: Any, smtp: tuple[Mailbox, int], api_client: Any
) -> None:
    mailbox, _ = smtp
    register(api_client, "marta")
    assert wait_until(lambda: len(mailbox.messages) == 1, timeout=30), mail_worker.tail()

    message = mailbox.messages[0]
    assert message["To"] == "marta@example.com"
    assert message["Subject"] == "Welcome to videoplatform, marta"
    assert message.get_content_type() == "multipart/alternative"
    parts = {
        part.get_content_type(): part.get_payload(decode=True).decode() for part in message.get_payload()
    }
    assert 'Your account "marta" is ready' in parts["text/plain"]
    assert "<strong>marta</strong>" in parts["text/html"]
    assert wait_until(lambda: EmailDelivery.objects.get().status == "sent", timeout=10)
    assert EmailDelivery.objects.get().attempts == 1


def test_a_failing_server_is_retried_five_times_then_the_email_is_recorded_failed(
    mail_worker: Any, smtp: tuple[Mailbox, int], api_client: Any
) -> None:
    mailbox, _ = smtp
    mailbox.mode = "busy"
    register(api_client, "nikos")
    assert wait_until(lambda: EmailDelivery.objects.get().status == "failed", timeout=60), mail_worker.tail()

    delivery = EmailDelivery.objects.get()
    assert mailbox.attempts == 6 and delivery.attempts == 6  # the first try and 5 retries
    assert "451" in delivery.last_error and "Gave up after 6 attempts" in delivery.last_error
    failure = TaskFailure.objects.get(task_name="accounts.tasks.send_email")
    assert (failure.queue, failure.retries) == ("email", 5)
    assert mailbox.messages == []


def test_a_refused_recipient_is_not_retried(
    mail_worker: Any, smtp: tuple[Mailbox, int], api_client: Any
) -> None:
    mailbox, _ = smtp
    mailbox.mode = "refuse"
    register(api_client, "olga")
    assert wait_until(lambda: EmailDelivery.objects.get().status == "failed", timeout=30), mail_worker.tail()
    delivery = EmailDelivery.objects.get()
    assert mailbox.attempts == 1 and delivery.attempts == 1
    assert "550" in delivery.last_error
    assert TaskFailure.objects.get(task_name="accounts.tasks.send_email").retries == 0
