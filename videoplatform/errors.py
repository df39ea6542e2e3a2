"""The one base of the errors services and selectors raise: each says its code, its HTTP status
and its default message, and the API's error handler (``videoplatform.api.errors``) renders it
as ``{"error": {"code": ..., "message": ...}}`` with that status. Nothing else maps them.

``ValueError`` and the like stay for programming errors (a caller breaking a contract): those
are bugs and answer 500.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.http import Http404


class DomainError(Exception):
    """A refusal a client can act on. Subclasses set the three class attributes."""

    status_code: ClassVar[int] = 409
    code: ClassVar[str] = "conflict"
    default_message: ClassVar[str] = "The request conflicts with the current state."

    def __init__(self, message: str | None = None, *, fields: Any = None) -> None:
        self.message = message or self.default_message
        self.fields = fields
        super().__init__(self.message)

    def headers(self) -> dict[str, str]:
        """Headers the answer carries besides the body (e.g. ``WWW-Authenticate``)."""
        return {}


class NotFound(DomainError, Http404):
    """No such thing, or not for this viewer. Also an ``Http404``: a page outside the API (the
    watch page) answers Django's 404 for it."""

    status_code = 404
    code = "not_found"
    default_message = "Not found."
