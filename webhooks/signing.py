"""Standard Webhooks signatures (standardwebhooks.com): ``whsec_`` secrets and ``v1`` HMACs.

The signed content is ``"{webhook-id}.{webhook-timestamp}.{body}"``; the signature is its
HMAC-SHA256 under the secret's decoded bytes, base64-encoded and prefixed with ``v1,``. While a
rolled secret's predecessor is still valid both signatures are sent, space-separated, and a
receiver holding either one verifies the message. Any Standard Webhooks library (e.g. the
``standardwebhooks`` package) verifies these; the tests check it does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets as _random

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SECRET_BYTES = 32


def secret_new() -> str:
    """A new signing secret: ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(_random.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def signature(secret: str, *, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_header(secrets: list[str], *, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header: one signature per valid secret, space-separated."""
    return " ".join(signature(secret, msg_id=msg_id, timestamp=timestamp, body=body) for secret in secrets)
