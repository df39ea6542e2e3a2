"""Payment gateways for tests, named in SUBSCRIPTIONS_PAYMENT_GATEWAY like a real one would be."""

from __future__ import annotations

import threading
from typing import ClassVar

from subscriptions.billing import ChargeResult, NoPaymentGateway, PaymentGatewayUnavailable
from subscriptions.models import Subscription


class RecordingGateway:
    """Approves, and remembers which subscriptions it charged and canceled."""

    charged: ClassVar[list[str]] = []
    canceled: ClassVar[list[str]] = []

    @classmethod
    def reset(cls) -> None:
        cls.charged.clear()
        cls.canceled.clear()

    def charge_subscription(self, subscription: Subscription) -> ChargeResult:
        self.charged.append(subscription.pk)
        return ChargeResult(approved=True, reference=f"ch_{subscription.pk}")

    def cancel(self, subscription: Subscription) -> None:
        self.canceled.append(subscription.pk)


class DecliningGateway:
    def charge_subscription(self, subscription: Subscription) -> ChargeResult:
        return ChargeResult(approved=False, message="Your card was declined.")

    def cancel(self, subscription: Subscription) -> None:
        raise AssertionError("nothing to cancel: every charge is declined")


class UnreachableGateway:
    def charge_subscription(self, subscription: Subscription) -> ChargeResult:
        raise PaymentGatewayUnavailable("connection refused")

    def cancel(self, subscription: Subscription) -> None:
        raise PaymentGatewayUnavailable("connection refused")


class BlockingGateway:
    """Holds the first charge (and so its transaction) open until the test releases it."""

    entered: ClassVar[threading.Event] = threading.Event()
    release: ClassVar[threading.Event] = threading.Event()

    @classmethod
    def reset(cls) -> None:
        cls.entered.clear()
        cls.release.clear()

    def charge_subscription(self, subscription: Subscription) -> ChargeResult:
        self.entered.set()
        assert self.release.wait(timeout=10), "the test never released the charge"
        return ChargeResult(approved=True)

    def cancel(self, subscription: Subscription) -> None:
        return None


class NotAGateway:
    pass


class RenamedFreeGateway(NoPaymentGateway):
    """The approve-everything default under another name: production must still refuse it."""
