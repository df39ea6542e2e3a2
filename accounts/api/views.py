"""The auth endpoints: register, login, logout, me. They parse, call a service, render."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import logout as session_logout
from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services, throttling
from accounts.authentication import AUTHENTICATE_HEADER
from accounts.models import User
from accounts.selectors import TokenAuth
from videoplatform.api import sharing
from videoplatform.api.schema import ErrorSerializer

from .serializers import (
    AuthTokenSerializer,
    LoginSerializer,
    RegisterSerializer,
    UserSerializer,
    UserUpdateSerializer,
)

TAGS = ["auth"]
RETRY_AFTER = OpenApiParameter(
    name="Retry-After",
    type=int,
    location=OpenApiParameter.HEADER,
    description="Seconds to wait before trying again.",
    response=[429],
)


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(response=ErrorSerializer, description=description)


BAD_REQUEST = _error(
    "`validation_error` (with `fields`: unknown, missing, over-long or wrongly typed fields) "
    "or `malformed_request` (the body is not JSON)."
)
NOT_AUTHENTICATED = _error(
    "`not_authenticated` (no credentials), `invalid_token` (unknown or revoked) or `token_expired`."
)
UNSUPPORTED = _error("`unsupported_media_type`: the body must be application/json.")


def _token_body(issued: services.IssuedToken) -> dict[str, Any]:
    return AuthTokenSerializer(
        {"token": issued.token, "token_type": "Bearer", "expires_at": issued.expires_at, "user": issued.user}
    ).data


class AnonymousAuthView(APIView):
    """Register and login ignore any credentials sent along (a stale token must not block a login)."""

    authentication_classes = ()
    permission_classes = (AllowAny,)
    parser_classes = (JSONParser,)

    def get_authenticate_header(self, request: Request) -> str:
        return AUTHENTICATE_HEADER  # so that invalid_credentials is a 401, not a 403


class RegisterView(AnonymousAuthView):
    @extend_schema(
        tags=TAGS,
        summary="Create an account and log in",
        request=RegisterSerializer,
        parameters=[RETRY_AFTER],
        responses={
            201: AuthTokenSerializer,
            400: _error(
                "`validation_error`: `fields.username` or `fields.email` already taken "
                "(case-insensitively), `fields.password` too weak, or a malformed field."
            ),
            415: UNSUPPORTED,
            429: _error("`throttled`: too many registrations from this address."),
        },
    )
    def post(self, request: Request) -> Response:
        throttling.registration_attempt(ip=throttling.client_ip(request))
        serializer = RegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with transaction.atomic():  # no account without its first token
            user = services.user_register(**serializer.validated_data)
            issued = services.token_issue(
                user=user,
                user_agent=request.META.get("HTTP_USER_AGENT", ""),
                ip_address=throttling.client_ip(request) or None,
            )
        return Response(_token_body(issued), status=status.HTTP_201_CREATED)


class LoginView(AnonymousAuthView):
    @extend_schema(
        tags=TAGS,
        summary="Log in with a username or email and a password",
        request=LoginSerializer,
        parameters=[RETRY_AFTER],
        responses={
            200: AuthTokenSerializer,
            400: BAD_REQUEST,
            401: _error("`invalid_credentials`: unknown account or wrong password (one answer for both)."),
            415: UNSUPPORTED,
            429: _error("`throttled`: too many failed logins for this account or from this address."),
            503: _error(
                "`service_unavailable`: a burst of sign-ins on this server; retry after `Retry-After` "
                "seconds (the attempt was not counted against the login limits)."
            ),
        },
    )
    def post(self, request: Request) -> Response:
        serializer = LoginSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        issued = services.login_attempt(
            identifier=serializer.validated_data["username"],
            password=serializer.validated_data["password"],
            ip=throttling.client_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
        )
        return Response(_token_body(issued))


class LogoutView(APIView):
    permission_classes = (IsAuthenticated,)

    @extend_schema(
        tags=TAGS,
        summary="Log out: revoke the token used (or end the session)",
        request=None,
        responses={204: None, 401: NOT_AUTHENTICATED},
    )
    def post(self, request: Request) -> Response:
        if isinstance(request.auth, TokenAuth):
            services.token_revoke(digest=request.auth.digest)
        else:
            session_logout(request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    permission_classes = (IsAuthenticated,)
    parser_classes = (JSONParser,)

    @extend_schema(
        tags=TAGS,
        summary="The signed-in user",
        responses={200: UserSerializer, 401: NOT_AUTHENTICATED},
    )
    def get(self, request: Request) -> Response:
        sharing.never(request)
        return Response(UserSerializer(request.user).data)

    @extend_schema(
        tags=TAGS,
        summary="Change the signed-in user's display name or adult-content preference",
        request=UserUpdateSerializer,
        responses={200: UserSerializer, 400: BAD_REQUEST, 401: NOT_AUTHENTICATED, 415: UNSUPPORTED},
    )
    def patch(self, request: Request) -> Response:
        serializer = UserUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        assert isinstance(request.user, User)
        user = services.user_update(user=request.user, **serializer.validated_data)
        return Response(UserSerializer(user).data)
