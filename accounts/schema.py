"""OpenAPI description of the bearer-token scheme (drf-spectacular), loaded by AccountsConfig.ready."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "An opaque token from POST /api/auth/login or /api/auth/register, sent as "
                "`Authorization: Bearer vpt_...`. It expires after AUTH_TOKEN_TTL and is revoked by "
                "POST /api/auth/logout."
            ),
        }
