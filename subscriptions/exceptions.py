"""Why a subscription change was refused: domain errors, each with its code and status (the
API's error handler renders them)."""

from __future__ import annotations

from videoplatform.errors import DomainError


class SubscriptionError(DomainError):
    status_code = 409
    code = "subscription_error"
    default_message = "The subscription could not be changed."


class PlanNotSubscribable(SubscriptionError):
    status_code = 400
    code = "plan_not_subscribable"
    default_message = "This plan cannot be subscribed to."


class AlreadySubscribed(SubscriptionError):
    code = "already_subscribed"
    default_message = "You are already subscribed to this plan."


class NoCurrentSubscription(SubscriptionError):
    status_code = 404
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
    status_code = 402
    code = "payment_declined"
    default_message = "The payment was declined."
