"""Signed, expiring media URLs.

Embedded default: the app serves media itself under ``/media/s/<token>/<path>``; the token
(HMAC-SHA256 over video, run, resolution cap, expiry and the video's access epoch) sits in the
path, so the relative URIs inside playlists (``720p/index.m3u8``, ``seg_00001.ts``) inherit it.
Nothing in a token is about the viewer, and its expiry is rounded up to a bucket
(``STREAM_URL_BUCKET``): viewers of a video with the same plan cap share URLs, so a CDN keeps
one copy of each file per bucket rather than one per viewer.

With a CDN configured: segments and images come from CloudFront with signed URLs made by
botocore's ``CloudFrontSigner`` (a custom policy per rendition folder, so one signature covers
its segments and none reaches a rung the plan excludes).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings

SIGNATURE_CHARS = 32  # 24 bytes of HMAC-SHA256, base64url
# Canonical decimal numbers only (no leading zero, ASCII digits): one grant has one spelling.
_NUMBER = re.compile(r"(?:0|[1-9][0-9]*)")


class InvalidToken(Exception):
    """Tampered, malformed or expired."""


@dataclass(frozen=True)
class StreamGrant:
    """What a token allows: one transcode run of one video, rungs up to ``cap``, until ``expires``,
    while the video's access epoch is still ``epoch`` (a privacy or premium change bumps it)."""

    video_id: str
    run_token: str
    cap: int
    expires: int  # unix seconds
    epoch: int = 0

    @property
    def payload(self) -> str:
        return f"{self.video_id}.{self.run_token}.{self.cap}.{self.expires}.{self.epoch}"

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(self.expires, tz=UTC)

    def seconds_left(self, now: float | None = None) -> int:
        return max(0, int(self.expires - (time.time() if now is None else now)))


def expiry(now: float, ttl: int) -> int:
    """When a link made at ``now`` to live ``ttl`` seconds expires: the end of the
    ``STREAM_URL_BUCKET`` it falls in, so links made within one bucket are the same URL.

    >>> expiry(1000, 3600)  # with a 900 s bucket
    4500
    """
    bucket = max(1, settings.STREAM_URL_BUCKET)
    return -(-(int(now) + ttl) // bucket) * bucket


def _signature(payload: str) -> str:
    key = settings.STREAM_SIGNING_KEY.encode("utf-8")
    digest = hmac.new(key, b"stream-url:" + payload.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")[:SIGNATURE_CHARS]


def token_for(grant: StreamGrant) -> str:
    return f"{grant.payload}.{_signature(grant.payload)}"


def grant_from_token(token: str, now: float | None = None) -> StreamGrant:
    """The grant a token carries. Raises ``InvalidToken`` when tampered or expired."""
    payload, _, signature = token.rpartition(".")
    parts = payload.split(".")
    if len(parts) != 5 or not signature:
        raise InvalidToken("Malformed token.")
    # The signature covers the text as sent, so a number can only be read one way.
    if not hmac.compare_digest(signature.encode(), _signature(payload).encode()):
        raise InvalidToken("Bad signature.")
    video_id, run_token, cap, expires, epoch = parts
    numbers = (cap, expires, epoch)
    if not all(_NUMBER.fullmatch(n) for n in numbers) or len(cap) > 5 or len(expires) > 12 or len(epoch) > 10:
        raise InvalidToken("Malformed token.")
    grant = StreamGrant(
        video_id=video_id, run_token=run_token, cap=int(cap), expires=int(expires), epoch=int(epoch)
    )
    if grant.payload != payload:
        raise InvalidToken("Malformed token.")
    if grant.expires <= (time.time() if now is None else now):
        raise InvalidToken("Expired.")
    return grant


# --- CloudFront ------------------------------------------------------------------------


def cloudfront_enabled() -> bool:
    return bool(
        settings.CLOUDFRONT_DOMAIN
        and settings.CLOUDFRONT_KEY_PAIR_ID
        and (settings.CLOUDFRONT_PRIVATE_KEY or settings.CLOUDFRONT_PRIVATE_KEY_FILE)
    )


def _private_key_pem() -> bytes:
    if settings.CLOUDFRONT_PRIVATE_KEY:
        # Environment variables often carry the PEM with literal "\n".
        return settings.CLOUDFRONT_PRIVATE_KEY.replace("\\n", "\n").encode("ascii")
    return Path(settings.CLOUDFRONT_PRIVATE_KEY_FILE).read_bytes()


@functools.lru_cache(maxsize=4)
def _signer(key_pair_id: str, pem: bytes) -> Any:
    from botocore.signers import CloudFrontSigner
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    private_key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise ValueError("The CloudFront key must be an RSA private key.")

    def rsa_signer(message: bytes) -> bytes:
        # CloudFront verifies RSA-SHA1 signatures (PKCS#1 v1.5).
        return private_key.sign(message, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303

    return CloudFrontSigner(key_pair_id, rsa_signer)


def cloudfront_signer() -> Any:
    return _signer(settings.CLOUDFRONT_KEY_PAIR_ID, _private_key_pem())


def cdn_url(key: str) -> str:
    return f"https://{settings.CLOUDFRONT_DOMAIN}/{key.lstrip('/')}"


def cloudfront_query(resource: str, expires_at: datetime) -> str:
    """``Policy=…&Signature=…&Key-Pair-Id=…`` for a custom policy on ``resource`` (may end in ``*``)."""
    signer = cloudfront_signer()
    policy = signer.build_policy(resource, date_less_than=expires_at)
    signed = signer.generate_presigned_url(resource, policy=policy)
    return str(signed.split("?", 1)[1])


def cloudfront_url(key: str, expires_at: datetime) -> str:
    """A CloudFront URL for one object (canned policy)."""
    return str(cloudfront_signer().generate_presigned_url(cdn_url(key), date_less_than=expires_at))
