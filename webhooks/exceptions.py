"""Why a webhook request was refused. The API maps each to a status and an error code."""

from __future__ import annotations


class WebhookError(Exception):
    code = "webhook_error"
    status = 400
    default_message = "The webhook request was refused."

    def __init__(self, message: str | None = None, *, code: str | None = None) -> None:
        self.message = message or self.default_message
        if code:
            self.code = code
        super().__init__(self.message)


class InvalidTarget(WebhookError):
    """The URL is malformed, too long, not https, or points at a private address (``code`` says which)."""

    code = "invalid_url"
    default_message = "Webhooks cannot be sent to this URL."


class UnknownEventType(WebhookError):
    code = "unknown_event_type"
    default_message = "Unknown event type."


class EndpointLimitReached(WebhookError):
    code = "endpoint_limit_reached"
    status = 409
    default_message = "You have as many webhook endpoints as allowed; delete one first."


class EndpointDisabled(WebhookError):
    code = "endpoint_disabled"
    status = 409
    default_message = "The endpoint is disabled; turn it back on (active: true) first."


class DeliveryInProgress(WebhookError):
    code = "delivery_in_progress"
    status = 409
    default_message = "An attempt of this delivery is under way; try again in a few seconds."
