"""CloudFront signed URLs (botocore's CloudFrontSigner) with a generated RSA key pair."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from streaming import signing

pytestmark = pytest.mark.django_db

DOMAIN = "cdn.example.com"
KEY_PAIR_ID = "K2TESTKEYPAIR"


@pytest.fixture(scope="module")
def key_pair():
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return private_key.public_key(), pem


@pytest.fixture
def cloudfront(settings, key_pair):
    public_key, pem = key_pair
    settings.CLOUDFRONT_DOMAIN = DOMAIN
    settings.CLOUDFRONT_KEY_PAIR_ID = KEY_PAIR_ID
    settings.CLOUDFRONT_PRIVATE_KEY = pem.replace("\n", "\\n")  # as an environment variable holds it
    return public_key


def _b64(text: str) -> bytes:
    # CloudFront's URL-safe base64: '-' for '+', '_' for '=', '~' for '/'.
    return base64.b64decode(text.replace("-", "+").replace("_", "=").replace("~", "/"))


def _verify(public_key, message: bytes, signature: str) -> None:
    public_key.verify(_b64(signature), message, padding.PKCS1v15(), hashes.SHA1())  # raises if wrong


def test_custom_policy_covers_a_folder_and_expires(cloudfront):
    expires = datetime.now(UTC) + timedelta(hours=1)
    resource = f"https://{DOMAIN}/videos/vid_x/hls/run1/720p/*"
    query = parse_qs(signing.cloudfront_query(resource, expires))
    assert query["Key-Pair-Id"] == [KEY_PAIR_ID]
    policy = _b64(query["Policy"][0])
    statement = json.loads(policy)["Statement"][0]
    assert statement["Resource"] == resource
    assert statement["Condition"]["DateLessThan"]["AWS:EpochTime"] == int(expires.timestamp())
    _verify(cloudfront, policy, query["Signature"][0])


def test_a_tampered_policy_does_not_verify(cloudfront):
    from cryptography.exceptions import InvalidSignature

    query = parse_qs(
        signing.cloudfront_query(f"https://{DOMAIN}/a/*", datetime.now(UTC) + timedelta(hours=1))
    )
    policy = _b64(query["Policy"][0]).replace(b"/a/*", b"/b/*")
    with pytest.raises(InvalidSignature):
        _verify(cloudfront, policy, query["Signature"][0])


def test_stream_with_a_cdn_signs_segments_per_rendition_folder(api_client, ready_video, cloudfront):
    video = ready_video()
    body = api_client.get(f"/api/videos/{video.pk}/stream").json()
    assert body["delivery"] == "cdn"
    # Playlists still come from the app (they are per viewer); the plan shapes them as before.
    assert [r["quality"] for r in body["renditions"]] == [480, 360]
    playlist = api_client.get(urlparse(body["renditions"][0]["url"]).path).content.decode()
    segments = [line for line in playlist.splitlines() if line and not line.startswith("#")]
    assert segments
    folder = f"https://{DOMAIN}/videos/{video.pk}/hls/run0001/480p/"
    for segment in segments:
        assert segment.startswith(folder + "seg_")
        query = parse_qs(urlparse(segment).query)
        policy = _b64(query["Policy"][0])
        assert json.loads(policy)["Statement"][0]["Resource"] == folder + "*"
        _verify(cloudfront, policy, query["Signature"][0])
    # The poster is one object: a canned policy.
    poster = urlparse(body["poster_url"])
    assert poster.netloc == DOMAIN and poster.path.endswith("/poster.jpg")
    query = parse_qs(poster.query)
    expires = int(query["Expires"][0])
    canned = json.dumps(
        {
            "Statement": [
                {
                    "Resource": body["poster_url"].split("?")[0],
                    "Condition": {"DateLessThan": {"AWS:EpochTime": expires}},
                }
            ]
        },
        separators=(",", ":"),
    ).encode()
    _verify(cloudfront, canned, query["Signature"][0])


def test_without_a_cdn_the_app_serves_segments(api_client, ready_video):
    video = ready_video()
    body = api_client.get(f"/api/videos/{video.pk}/stream").json()
    assert body["delivery"] == "app"
    playlist = api_client.get(urlparse(body["renditions"][0]["url"]).path).content.decode()
    assert all(line.startswith("seg_") for line in playlist.splitlines() if line and not line.startswith("#"))
