"""Why a live request or a publish was refused. The API maps each to a status and an error code."""

from __future__ import annotations


class LiveError(Exception):
    code = "live_error"
    status = 400
    default_message = "The live stream could not be changed."

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class LiveNotFound(LiveError):
    code = "not_found"
    status = 404
    default_message = "No such live stream."


class AlreadyEnded(LiveError):
    code = "live_already_ended"
    status = 409
    default_message = "This live stream is not broadcasting."


class NotLive(LiveError):
    """The stream endpoint was asked for a stream that is not live or reconnecting."""

    code = "live_not_live"
    status = 409
    default_message = "This stream is not live."

    def __init__(self, status: str) -> None:
        self.live_status = status
        super().__init__(
            {
                "idle": "The broadcaster has not started yet.",
                "connecting": "The broadcast is starting.",
                "ended": "The broadcast has ended.",
            }.get(status, self.default_message)
        )


class PublishRefused(LiveError):
    """The ingest's on_publish hook is answered 403: nothing is written."""

    code = "publish_refused"
    status = 403
    default_message = "Publishing refused."


class HookForbidden(LiveError):
    code = "permission_denied"
    status = 403
    default_message = "Bad or missing hook secret."
