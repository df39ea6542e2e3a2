"""Why a subscription change was refused. The API maps each to a status and an error code."""

from __future__ import annotations


class SubscriptionError(Exception):
    code = "subscription_error"
    default_message = "The subscription could not be changed."

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class PlanNotSubscribable(SubscriptionError):
    code = "plan_not_subscribable"
    default_message = "This plan cannot be subscribed to."


class AlreadySubscribed(SubscriptionError):
    code = "already_subscribed"
    default_message = "You are already subscribed to this plan."


class NoCurrentSubscription(SubscriptionError):
    code = "no_subscription"
    default_message = "You have no current subscription."


class AlreadyCanceled(SubscriptionError):
    code = "already_canceled"
    default_message = "The subscription is already canceled at the end of its period."


class SubscriptionConflict(SubscriptionError):
    """Another change to the same user's subscription won (the database constraint refused ours)."""

    code = "subscription_conflict"
    default_message = "Your subscription was changed by another request; try again."


class PaymentDeclined(SubscriptionError):
    code = "payment_declined"
    default_message = "The payment was declined."
