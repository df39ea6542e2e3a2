"""Concurrent subscribe requests for one user, against real PostgreSQL transactions."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connections, transaction

from subscriptions.models import Subscription
from tests.factories import PlanFactory, UserFactory

from .conftest import client_for

SUBSCRIBE = "/api/subscriptions"

pytestmark = pytest.mark.django_db(transaction=True)


class Worker(threading.Thread):
    """Runs ``target`` on its own database connection and keeps its result or exception."""

    def __init__(self, target: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.target_fn = target
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.target_fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread by outcome()
            self.error = exc
        finally:
            connections.close_all()

    def outcome(self) -> Any:
        self.join(timeout=15)
        assert not self.is_alive(), "worker did not finish"
        if self.error is not None:
            raise self.error
        return self.result


def subscribe(user: Any, plan_id: str) -> Callable[[], tuple[int, dict[str, Any]]]:
    def call() -> tuple[int, dict[str, Any]]:
        response = client_for(user).post(SUBSCRIBE, {"plan_id": plan_id}, format="json")
        return response.status_code, response.json()

    return call


def current_of(user: Any) -> list[Subscription]:
    return list(Subscription.objects.filter(user=user, status__in=Subscription.CURRENT_STATUSES))


def test_two_simultaneous_requests_leave_one_current_subscription() -> None:
    user, plan = UserFactory(), PlanFactory()
    barrier = threading.Barrier(2)

    def racer() -> tuple[int, dict[str, Any]]:
        barrier.wait(timeout=5)
        return subscribe(user, plan.pk)()

    workers = [Worker(racer), Worker(racer)]
    for worker in workers:
        worker.start()
    outcomes = sorted(worker.outcome() for worker in workers)

    assert [status for status, _ in outcomes] == [201, 409]
    assert len(current_of(user)) == 1
    assert Subscription.objects.filter(user=user).count() == 1


def test_a_second_request_waits_for_the_first_and_sees_its_subscription(blocking_gateway: Any) -> None:
    user, plan = UserFactory(), PlanFactory()
    first = Worker(subscribe(user, plan.pk))
    first.start()
    assert blocking_gateway.entered.wait(timeout=5)  # the first holds its transaction open

    second = Worker(subscribe(user, plan.pk))
    second.start()
    time.sleep(0.5)
    waited = second.is_alive()
    blocking_gateway.release.set()

    assert waited, "the second request should wait on the user's lock"
    assert first.outcome()[0] == 201
    status, body = second.outcome()
    assert (status, body["error"]["code"]) == (409, "already_subscribed")
    assert len(current_of(user)) == 1


def test_concurrent_plan_changes_apply_one_after_the_other(blocking_gateway: Any) -> None:
    user, standard, premium = UserFactory(), PlanFactory(), PlanFactory()
    first = Worker(subscribe(user, standard.pk))
    first.start()
    assert blocking_gateway.entered.wait(timeout=5)
    second = Worker(subscribe(user, premium.pk))
    second.start()
    time.sleep(0.3)
    blocking_gateway.release.set()

    first_status, first_body = first.outcome()
    second_status, second_body = second.outcome()

    assert (first_status, second_status) == (201, 201)
    assert [sub.pk for sub in current_of(user)] == [second_body["id"]]
    replaced = Subscription.objects.get(pk=first_body["id"])
    assert replaced.status == Subscription.Status.CANCELED


def test_a_write_that_bypasses_the_lock_makes_the_constraint_answer_409() -> None:
    """A writer that does not take the user lock (a script, the admin) races a request:
    the partial unique index is the last line, and the request gets a 409, not a 500."""
    user, plan, other_plan = UserFactory(), PlanFactory(), PlanFactory()
    inserted, release = threading.Event(), threading.Event()

    def direct_insert() -> str:
        with transaction.atomic():
            subscription = Subscription.objects.create(
                user=user, plan=other_plan, current_period_end=plan.created_at.replace(year=2100)
            )
            inserted.set()
            assert release.wait(timeout=10)
        return subscription.pk

    writer = Worker(direct_insert)
    writer.start()
    assert inserted.wait(timeout=5)
    request = Worker(subscribe(user, plan.pk))
    request.start()
    time.sleep(0.5)
    blocked = request.is_alive()  # waiting on the unique index for the writer's row
    release.set()

    direct_id = writer.outcome()
    status, body = request.outcome()
    assert blocked
    assert (status, body["error"]["code"]) == (409, "subscription_conflict")
    assert [sub.pk for sub in current_of(user)] == [direct_id]
    assert Subscription.objects.filter(user=user).count() == 1
