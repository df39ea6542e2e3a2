"""Compression (7.2): gzip level 6 or brotli, JSON/text/HTML only, at least 1 KB, when accepted."""

from __future__ import annotations

import gzip
import json

import brotli
import pytest
from django.http import HttpResponse
from django.test import Client, RequestFactory

from tests.factories import VideoFactory
from videoplatform.entry.middleware import CompressionMiddleware, choose_encoding

pytestmark = pytest.mark.django_db


@pytest.fixture
def big_feed():
    VideoFactory.create_batch(10, description="words " * 50, status="ready")


def test_gzip_level_6_for_large_json_when_accepted(client: Client, big_feed):
    plain = client.get("/api/videos")
    assert len(plain.content) > 1024
    assert not plain.has_header("Content-Encoding")
    assert "Accept-Encoding" in plain["Vary"]

    zipped = client.get("/api/videos", HTTP_ACCEPT_ENCODING="gzip")
    assert zipped["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in zipped["Vary"]
    assert json.loads(gzip.decompress(zipped.content)) == plain.json()
    assert zipped.content == gzip.compress(plain.content, compresslevel=6, mtime=0)
    assert int(zipped["Content-Length"]) == len(zipped.content) < len(plain.content)


def test_brotli_preferred_when_accepted(client: Client, big_feed):
    response = client.get("/api/videos", HTTP_ACCEPT_ENCODING="gzip, deflate, br")
    assert response["Content-Encoding"] == "br"
    assert json.loads(brotli.decompress(response.content))["pagination"]["total"] == 10


def test_refused_encodings_are_respected(client: Client, big_feed):
    response = client.get("/api/videos", HTTP_ACCEPT_ENCODING="br;q=0, gzip;q=0")
    assert not response.has_header("Content-Encoding")
    response = client.get("/api/videos", HTTP_ACCEPT_ENCODING="identity")
    assert not response.has_header("Content-Encoding")


def test_small_responses_are_not_compressed(client: Client):
    response = client.get("/api/videos", HTTP_ACCEPT_ENCODING="gzip, br")
    assert len(response.content) < 1024
    assert not response.has_header("Content-Encoding")


@pytest.mark.parametrize(
    ("content_type", "compressed"),
    [
        ("application/json", True),
        ("text/html; charset=utf-8", True),
        ("text/plain", True),
        ("image/png", False),
        ("application/octet-stream", False),
        ("video/mp2t", False),
    ],
)
def test_only_json_text_and_html_are_compressed(content_type, compressed):
    body = b"a" * 5000
    middleware = CompressionMiddleware(lambda request: HttpResponse(body, content_type=content_type))
    response = middleware(RequestFactory().get("/x", HTTP_ACCEPT_ENCODING="gzip"))
    assert response.has_header("Content-Encoding") is compressed


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("", None),
        ("gzip", "gzip"),
        ("br", "br"),
        ("*", "br"),
        ("gzip;q=1.0, br;q=0.5", "gzip"),
        ("deflate", None),
    ],
)
def test_choose_encoding(header, expected):
    assert choose_encoding(header) == expected
