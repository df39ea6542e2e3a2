"""One JSON error shape for the whole API: ``{"error": {"code", "message", "fields"?}}``."""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import DatabaseError, InterfaceError, OperationalError, connections
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response

from ..errors import DomainError

logger = logging.getLogger(__name__)

STATUS_CODES: dict[int, tuple[str, str]] = {
    400: ("bad_request", "The request is malformed."),
    401: ("not_authenticated", "Authentication credentials were not provided."),
    403: ("permission_denied", "You do not have permission to perform this action."),
    404: ("not_found", "Not found."),
    405: ("method_not_allowed", "Method not allowed."),
    406: ("not_acceptable", "Could not satisfy the request Accept header."),
    409: ("conflict", "The request conflicts with the current state."),
    413: ("payload_too_large", "The request body is too large."),
    415: ("unsupported_media_type", "Unsupported media type."),
    429: ("throttled", "Too many requests."),
    500: ("server_error", "An unexpected error occurred."),
    503: ("service_unavailable", "The service is temporarily unavailable."),
}


class ApiError(exceptions.APIException):
    """An API error with an explicit status, code and message."""

    def __init__(self, status_code: int, code: str, message: str, fields: Any = None) -> None:
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.error_code = code
        self.fields = fields


class Conflict(ApiError):
    def __init__(self, message: str, code: str = "conflict") -> None:
        super().__init__(status.HTTP_409_CONFLICT, code, message)


def error_body(code: str, message: str, fields: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return {"error": error}


def error_response(status_code: int, code: str | None = None, message: str | None = None) -> JsonResponse:
    default_code, default_message = STATUS_CODES.get(status_code, ("error", "Request failed."))
    return JsonResponse(error_body(code or default_code, message or default_message), status=status_code)


# A database that cannot be reached (down, restarting, the pooler refusing) is an outage, not a
# bug: 503 with Retry-After, so that clients and load balancers retry instead of giving up.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)
DATABASE_RETRY_AFTER = 3
DATABASE_UNAVAILABLE_MESSAGE = "The database is unavailable; retry shortly."
# read_only_sql_transaction: a write reached a server that is no longer (or not) the primary, e.g.
# a pooler not yet re-pointed after a failover. An outage as well; the connection is dropped.
READ_ONLY_SQLSTATE = "25006"


def database_unavailable(exc: BaseException | None) -> bool:
    """Whether ``exc`` means the primary cannot take the request now (503, not a bug's 500)."""
    if isinstance(exc, DATABASE_UNAVAILABLE):
        return True
    if isinstance(exc, DatabaseError) and getattr(exc.__cause__, "sqlstate", None) == READ_ONLY_SQLSTATE:
        # Reconnect at the end of the request: the URL's next connection may reach the primary.
        for connection in connections.all(initialized_only=True):
            if connection.connection is not None:
                connection.close_at = 0.0
        return True
    return False


def database_unavailable_response() -> JsonResponse:
    response = error_response(503, message=DATABASE_UNAVAILABLE_MESSAGE)
    response["Retry-After"] = str(DATABASE_RETRY_AFTER)
    return response


def _first_message(detail: Any) -> str:
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    if isinstance(detail, dict) and detail:
        return _first_message(next(iter(detail.values())))
    return str(detail)


def _code_of(exc: exceptions.APIException) -> str:
    if isinstance(exc, ApiError):
        return exc.error_code
    if isinstance(exc, exceptions.ValidationError):
        return "validation_error"
    if isinstance(exc, exceptions.ParseError):
        return "malformed_request"
    codes = exc.get_codes()
    return codes if isinstance(codes, str) else STATUS_CODES.get(exc.status_code, ("error", ""))[0]


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's exception handler, rendering every error in the one shape."""
    if isinstance(exc, DomainError):
        return Response(
            error_body(exc.code, exc.message, exc.fields), status=exc.status_code, headers=exc.headers()
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif database_unavailable(exc):
        logger.warning("Database unavailable: %s", exc)
        return Response(
            error_body("service_unavailable", DATABASE_UNAVAILABLE_MESSAGE),
            status=503,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER)},
        )
    if not isinstance(exc, exceptions.APIException):
        return None  # a bug: ApiErrorMiddleware logs it and answers 500 JSON

    headers: dict[str, str] = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
    if getattr(exc, "wait", None) is not None:
        headers["Retry-After"] = str(max(1, int(exc.wait)))  # type: ignore[attr-defined]

    fields: Any = None
    if isinstance(exc, ApiError):
        fields = exc.fields
        message = str(exc.detail)
    elif isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        if isinstance(detail, dict):
            fields = detail
            non_field = detail.get("non_field_errors")
            message = _first_message(non_field) if non_field else "Invalid input."
        else:
            message = _first_message(detail)
    else:
        message = _first_message(exc.detail)
    return Response(error_body(_code_of(exc), message, fields), status=exc.status_code, headers=headers)


def is_api_path(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


# Django-level handlers (URLs that match no view, errors outside DRF).
def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api_path(request.path):
        return error_response(404)
    from django.views import defaults

    return defaults.page_not_found(request, exception or Http404())


def handler500(request: HttpRequest) -> HttpResponse:
    # Called while the exception is being handled (also for one raised by a middleware, which
    # never reaches ApiErrorMiddleware.process_exception): an unreachable database is a 503.
    if database_unavailable(sys.exc_info()[1]):
        if is_api_path(request.path):
            return database_unavailable_response()
        response = HttpResponse(
            "Service temporarily unavailable.\n", status=503, content_type="text/plain; charset=utf-8"
        )
        response["Retry-After"] = str(DATABASE_RETRY_AFTER)
        return response
    if is_api_path(request.path):
        return error_response(500)
    from django.views import defaults

    return defaults.server_error(request)
