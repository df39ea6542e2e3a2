"""Bearer-token authentication for the API: ``Authorization: Bearer vpt_...``."""

from __future__ import annotations

from typing import Any

from rest_framework import HTTP_HEADER_ENCODING
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

AUTHENTICATE_HEADER = 'Bearer realm="api"'
KEYWORD = b"bearer"


def bearer_token(header: bytes | str) -> str | None:
    """The token an ``Authorization`` header carries, read the one way the API reads it: None
    when it holds no bearer credentials (the next authentication class decides), the token
    otherwise; raises AuthenticationFailed when it is malformed.

    The header is split on ASCII whitespace only, as DRF splits it: the response cache
    (``videoplatform.entry.response_cache``) reads it with this function too, so the two cannot tell
    a client apart differently.
    """
    if isinstance(header, str):
        try:
            header = header.encode(HTTP_HEADER_ENCODING)
        except UnicodeEncodeError:
            raise AuthenticationFailed("The token is invalid.", code="invalid_token") from None
    parts = header.split()
    if not parts or parts[0].lower() != KEYWORD:
        return None
    if len(parts) != 2:
        raise AuthenticationFailed("The Authorization header must be 'Bearer <token>'.", code="invalid_token")
    try:
        return parts[1].decode("ascii")
    except UnicodeDecodeError:
        raise AuthenticationFailed("The token is invalid.", code="invalid_token") from None


class BearerTokenAuthentication(BaseAuthentication):
    """Checks the token against the shared "tokens" cache, falling back to the primary database.

    A request with no ``Authorization: Bearer`` header is left to the next authentication
    class (sessions); one with a bad, revoked or expired token is refused with 401.
    """

    keyword = KEYWORD

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        # Imported here: DRF imports this module while the app registry may still be loading.
        from .selectors import TokenRejected, token_user_get

        token = bearer_token(get_authorization_header(request))
        if token is None:
            return None
        try:
            return token_user_get(token=token)
        except TokenRejected as exc:
            raise AuthenticationFailed(exc.message, code=exc.code) from None

    def authenticate_header(self, request: Request) -> str:
        return AUTHENTICATE_HEADER


def request_digest(request: Any) -> str | None:
    """The digest of the bearer token a request carries (None: none, or not one of ours)."""
    header = request.META.get("HTTP_AUTHORIZATION")
    if not header:
        return None
    from .token_cache import TOKEN_MAX_LENGTH, TOKEN_PREFIX, token_digest

    try:
        token = bearer_token(header)
    except AuthenticationFailed:
        return None
    if token is None or not token.startswith(TOKEN_PREFIX) or len(token) > TOKEN_MAX_LENGTH:
        return None
    return token_digest(token)


def request_user_hint(request: Any) -> str | None:
    """The id of the user the request's bearer token belonged to when this process last read it
    (a hint: the token is checked as always)."""
    from videoplatform.cache import prefetch

    digest = request_digest(request)
    return None if digest is None else prefetch.hinted(prefetch.TOKEN_USER, digest)


def prefetch_wants(request: Any) -> list[Any]:
    """The token's entry, read with the request's other keys (``videoplatform.cache.prefetch``)."""
    from videoplatform.cache import prefetch

    from .token_cache import TOKENS_ALIAS, cache_key

    if not request.path_info.startswith("/api/"):
        return []  # the API's views authenticate every request; other pages may not read it
    digest = request_digest(request)
    return [] if digest is None else [prefetch.Raw(TOKENS_ALIAS, cache_key(digest))]
