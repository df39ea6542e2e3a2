"""The payment seam: what the subscription services ask of a payment processor.

There is no processor yet. ``NoPaymentGateway`` approves every charge without taking money (the
default, for development and tests; ``settings.prod`` refuses it); ``ClosedPaymentGateway``
declines every charge (a production without a processor sells nothing); a real one implements
``PaymentGateway`` and is named in ``SUBSCRIPTIONS_PAYMENT_GATEWAY`` (docs/subscriptions.md).
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
    """Approves every charge without taking money: the platform has no payment processor.

    Premium is free with it, so ``settings.prod`` refuses to start with it (or a subclass).
    """

    # What production refuses (``gateway_refusal``): a gateway that grants without charging.
    approves_without_payment = True

    def charge_subscription(self, subscription: Subscription) -> ChargeResult:
        return ChargeResult(approved=True, message="No payment processor configured; not charged.")

    def cancel(self, subscription: Subscription) -> None:
        return None


class ClosedPaymentGateway:
    """Declines every charge: a production with no payment processor, where nothing is on sale."""

    def charge_subscription(self, subscription: Subscription) -> ChargeResult:
        return ChargeResult(approved=False, message="Subscriptions are not on sale yet.")

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


def gateway_refusal() -> str | None:
    """Why production must not start with the configured gateway, or None when it may.

    Resolving the gateway at start-up also turns a mistyped path into a refusal to start rather
    than a 500 on the first subscription.
    """
    path = getattr(settings, "SUBSCRIPTIONS_PAYMENT_GATEWAY", DEFAULT_PAYMENT_GATEWAY)
    try:
        gateway = get_payment_gateway()
    except (ImportError, ImproperlyConfigured) as exc:
        return f"SUBSCRIPTIONS_PAYMENT_GATEWAY={path!r} cannot be used: {exc}"
    if getattr(gateway, "approves_without_payment", False):
        return (
            f"SUBSCRIPTIONS_PAYMENT_GATEWAY={path!r} approves every charge without taking money: "
            "name the payment processor's gateway (or subscriptions.billing.ClosedPaymentGateway "
            "to sell nothing)"
        )
    return None
