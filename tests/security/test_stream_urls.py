"""Signed media URLs (the embedded default, served by the app): tampering with any part of the
token, or using it after it expired, is a 403; a valid token opens only the files of its own run,
up to its rung cap, and never a path outside them."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.test import Client

from streaming import signing
from tests.factories import VideoFactory

pytestmark = pytest.mark.django_db

FUTURE = int(time.time()) + 3600


@pytest.fixture(autouse=True)
def _video(db: Any) -> None:
    # Links are checked against their video (it must exist, and its access epoch match).
    VideoFactory(pk=VIDEO_ID)


VIDEO_ID = "vid_abcdefghijklmnopqrstuv"


def _token(**changes: Any) -> str:
    grant = {"video_id": VIDEO_ID, "run_token": "run1", "cap": 480, "expires": FUTURE, **changes}
    return signing.token_for(signing.StreamGrant(**grant))


def _get(token: str, path: str = "master.m3u8") -> Any:
    return Client().get(f"/media/s/{token}/{path}")


def test_a_valid_token_passes_the_signature_check() -> None:
    # Nothing was transcoded for this run: past the check, the file is simply not there.
    assert _get(_token()).status_code == 404


def _swap(token: str, index: int, value: str) -> str:
    parts = token.split(".")
    parts[index] = value
    return ".".join(parts)


@pytest.mark.parametrize(
    "forge",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # signature changed
        lambda t: _swap(t, 0, "vid_other"),  # another video
        lambda t: _swap(t, 1, "run2"),  # another run
        lambda t: _swap(t, 2, "1080"),  # a higher cap
        lambda t: _swap(t, 3, str(FUTURE + 86400)),  # a later expiry
        lambda t: _swap(t, 4, "1"),  # another access epoch
        lambda t: _swap(t, 5, ""),  # no signature
        lambda t: t.rsplit(".", 1)[0],  # signature dropped
        lambda t: "not-a-token",
    ],
    ids=["signature", "video", "run", "cap", "expiry", "epoch", "empty-signature", "no-signature", "garbage"],
)
def test_a_tampered_token_is_403(forge: Any) -> None:
    response = _get(forge(_token()))
    assert response.status_code == 403
    assert response["Cache-Control"] == "no-store"


def test_an_expired_token_is_403() -> None:
    response = _get(_token(expires=int(time.time()) - 1))
    assert response.status_code == 403
    assert b"xpired" in response.content


def test_a_rung_above_the_cap_is_403() -> None:
    assert _get(_token(cap=480), "1080p/index.m3u8").status_code == 403
    assert _get(_token(cap=480), "480p/index.m3u8").status_code == 404  # allowed, not there


@pytest.mark.parametrize(
    "path",
    [
        "../../../../etc/passwd",
        "480p/../../../secret",
        "%2e%2e/%2e%2e/etc/passwd",
        "480p/seg_00001.ts/../x",
        "/etc/passwd",
    ],
)
def test_a_valid_token_opens_nothing_outside_its_run(path: str) -> None:
    assert _get(_token(), path).status_code == 404


@pytest.mark.parametrize(
    "spelling",
    [
        lambda t: _swap(t, 2, "0480"),  # a leading zero
        lambda t: _swap(t, 2, "+480"),
        lambda t: _swap(t, 2, "480 "),
        lambda t: _swap(t, 2, "\u0664\u0668\u0660"),  # Arabic-Indic digits: int() reads them as 480
        lambda t: _swap(t, 2, "\u00b2"),  # a superscript two: isdigit() but not a number
        lambda t: _swap(t, 3, "0" + str(FUTURE)),
        lambda t: _swap(t, 3, f"{FUTURE}\u0660"),
        lambda t: _swap(t, 4, "00"),
    ],
    ids=[
        "leading-zero",
        "plus",
        "space",
        "arabic-indic",
        "superscript",
        "expiry-zero",
        "expiry-unicode",
        "epoch-zeros",
    ],
)
def test_numbers_in_a_token_have_one_spelling(spelling: Any) -> None:
    """Another spelling of the same grant (re-signed) or a lookalike digit is refused: 403, never 500."""
    token = spelling(_token())
    payload = token.rsplit(".", 1)[0]
    resigned = f"{payload}.{signing._signature(payload)}"
    for candidate in (token, resigned):
        response = _get(candidate)
        assert response.status_code == 403, (candidate, response.status_code)
        assert response["Cache-Control"] == "no-store"
