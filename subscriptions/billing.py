"""The payment seam: what the subscription services ask of a payment processor.

There is no processor yet. ``NoPaymentGateway`` approves every charge without taking money;
a real one implements ``PaymentGateway`` and is named in ``SUBSCRIPTIONS_PAYMENT_GATEWAY``
(docs/subscriptions.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from .models import Subscription

DEFAULT_PAYMENT_GATEWAY = "subscriptions.billing.NoPaymentGateway"


@dataclass(frozen=True)
class ChargeResult:
    approved: bool
    reference: str = ""  # the processor's id for the charge, for support and refunds
    message: str = ""  # shown to the subscriber when the charge is declined


class PaymentGatewayUnavailable(Exception):
    """The processor could not be reached or failed; nothing was charged."""


@runtime_checkable
class PaymentGateway(Protocol):
    def charge_subscription(self, subscription: Subscription) -> ChargeResult:
        """Charge the first period of a new subscription.

        Called inside the transaction that creates ``subscription`` (its id is final and makes a
        good idempotency key). A declined charge rolls the whole change back. Raise
        ``PaymentGatewayUnavailable`` when the processor cannot answer.
        """
        ...

    def cancel(self, subscription: Subscription) -> None:
        """Stop billing ``subscription`` (canceled at period end, replaced, or expired by staff).

        Called after the change has committed; an exception is logged, not shown to the user.
        """
        ...


class NoPaymentGateway:
    """Approves every charge without taking money: the platform has no payment processor."""

    def charge_subscription(self, subscription: Subscription) -> ChargeResult:
        return ChargeResult(approved=True, message="No payment processor configured; not charged.")

    def cancel(self, subscription: Subscription) -> None:
        return None


def get_payment_gateway() -> PaymentGateway:
    """The gateway named by ``settings.SUBSCRIPTIONS_PAYMENT_GATEWAY`` (a dotted class path)."""
    path = getattr(settings, "SUBSCRIPTIONS_PAYMENT_GATEWAY", DEFAULT_PAYMENT_GATEWAY)
    gateway = import_string(path)()
    if not isinstance(gateway, PaymentGateway):
        raise ImproperlyConfigured(
            f"SUBSCRIPTIONS_PAYMENT_GATEWAY={path!r} does not implement PaymentGateway."
        )
    return gateway
