"""The fast JSON path against DRF's own code: the same bytes out, the same values in, the same
errors; rendered bodies that follow every change and stay bounded; remembered serializers and
content negotiation that answer what DRF would (videoplatform/api/rendering.py,
representations.py, negotiation.py), each compared with its switch on and off."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import brotli
import pytest
from django.test import override_settings
from rest_framework import parsers as drf_parsers
from rest_framework import renderers as drf_renderers
from rest_framework.exceptions import ParseError
from rest_framework.test import APIClient

from tests.factories import UserFactory, VideoFactory
from videoplatform.api import rendering
from videoplatform.api.rendering import JSONParser, JSONRenderer, RenderedBodies, Unrenderable, dumps
from videoplatform.api.representations import represent
from videos.api.serializers import VIDEO_FIELDS, VideoSerializer
from videos.api.views import VideoDetailView, VideoListView
from videos.models import Video

READY = Video.Status.READY


def drf_render(data: Any, accepted_media_type: str | None = None) -> bytes:
    return drf_renderers.JSONRenderer().render(data, accepted_media_type, {})  # type: ignore[no-any-return]


# --- Rendering: the bytes DRF writes -----------------------------------------------------------

RENDERED_ALIKE: dict[str, Any] = {
    "plain values": {"id": "vid_1", "title": "Hello", "n": 3, "ok": True, "no": False, "none": None},
    "unicode": {
        "title": "café \u2013 日本語 \u2013 🎬 \u2013 Ελληνικά",
        "quotes and backslashes": 'say "hi" \\ back\\slash /',
        "control characters": "tab\t newline\n return\r nul\x00 unit\x1f delete\x7f",
        "markup": "</script><!-- & -->",
    },
    "line and paragraph separators": {"title": "one\u2028two\u2029three", "nested": [["\u2028\u2029"]]},
    "date-times": {
        "utc with microseconds": dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC),
        "utc": dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC),
        "naive": dt.datetime(2024, 5, 6, 7, 8, 9),
        "tokyo": dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=ZoneInfo("Asia/Tokyo")),
        "new york, summer": dt.datetime(2024, 7, 1, 12, 0, tzinfo=ZoneInfo("America/New_York")),
        "date": dt.date(2024, 2, 29),
        "time": dt.time(23, 59, 59, 1),
        "duration": dt.timedelta(days=1, seconds=3, microseconds=500000),
    },
    "decimals": {"price": Decimal("9.99"), "zero": Decimal("0"), "long": Decimal("12345678901234567890.5")},
    "uuids": {"id": uuid.UUID("12345678-1234-5678-1234-567812345678"), "list": [uuid.UUID(int=1)]},
    "nested lists": [[1, [2, [3, [4, {"deep": [[], {}]}]]]], [], {}, [None, True, "x"]],
    "floats": [
        0.1,
        1.5,
        -2.25,
        3.0,
        0.0001,
        123456.789,
        0.30000000000000004,
        1e16,
        1e22,
        1.7976931348623157e308,
    ],
    "tiny floats": [1.5e-10, -1e-300, 5e-324, 2.2250738585072014e-308],
    "integers within 64 bits": [0, -1, 2**53 + 1, 2**63 - 1, -(2**63), 2**64 - 1],
    "tuples and sets": {"tuple": (1, "two"), "set": {3}, "frozenset": frozenset({"x"})},
    "bytes": {"raw": b"ascii bytes"},
}

BEYOND_ORJSON: dict[str, Any] = {
    "integers beyond 64 bits": {"big": 2**64, "below": -(2**63) - 1, "huge": 10**30, "in a list": [[2**70]]},
    "non-string keys": {1: "one", 2.5: "two and a half", None: "none", "s": "string"},
}


@pytest.mark.parametrize("data", RENDERED_ALIKE.values(), ids=RENDERED_ALIKE.keys())
def test_dumps_writes_exactly_the_bytes_of_drfs_renderer(data: Any) -> None:
    expected = drf_render(data)
    assert dumps(data) == expected
    assert JSONRenderer().render(data) == expected


@pytest.mark.parametrize("data", BEYOND_ORJSON.values(), ids=BEYOND_ORJSON.keys())
def test_what_orjson_cannot_write_is_written_by_drf(data: Any) -> None:
    with pytest.raises(Unrenderable):
        dumps(data)  # never different bytes: it refuses
    assert JSONRenderer().render(data) == drf_render(data)
    bodies = RenderedBodies(10)
    assert bodies.body(("key",), lambda: data) is data  # nothing kept: DRF renders it each time


def test_small_floats_may_be_other_bytes_but_are_the_same_numbers() -> None:
    # The documented difference: between about 1e-10 and 1e-4 orjson writes 0.00005 for 5e-05
    # and 1e-7 for 1e-07; any JSON reader reads the same numbers.
    data = [9.9e-05, 5e-05, 1e-05, -1e-06, 2.5e-07, 1e-09]
    assert json.loads(dumps(data)) == json.loads(drf_render(data)) == data


@pytest.mark.parametrize("indent", ["2", "4"])
def test_an_indent_asked_for_is_drfs_indented_rendering(indent: str) -> None:
    data = RENDERED_ALIKE["unicode"] | RENDERED_ALIKE["line and paragraph separators"]
    media_type = f"application/json; indent={indent}"
    expected = drf_render(data, media_type)
    assert b"\n" + b" " * int(indent) in expected
    assert JSONRenderer().render(data, media_type, {}) == expected
    kept = RenderedBodies(10).body(("key",), lambda: data)
    assert JSONRenderer().render(kept, media_type, {}) == expected  # a kept compact body is not reused


# --- Parsing: what DRF's parser reads, and its errors -------------------------------------------

VALID_BODIES = {
    "unicode escapes": b'{"title": "caf\\u00e9 \\ud83c\\udfac \\u65e5\\u672c"}',
    "unicode raw": '{"title": "café 🎬 日本"}'.encode(),
    "separators raw": '{"ls": "\u2028\u2029"}'.encode(),
    "escapes": b'{"e": "\\t\\n\\r\\"\\\\\\/\\b\\f\\u0000"}',
    "numbers": b'{"n": [0, -1, 1.5, 1e-7, 5e-324, 2.2250738585072014e-308, -0.0, 1E3]}',
    "the largest float": b"[1.7976931348623157e308, -1.7976931348623157e308]",
    "integers at and beyond 64 bits": (
        b'{"max": 9223372036854775807, "umax": 18446744073709551615, "big": 12345678901234567890123,'
        b' "below": -9223372036854775809}'
    ),
    "a float too large": b'{"huge": 1e400}',
    "nesting": b'{"a": [[[[{"b": [true, false, null, {}, []]}]]]]}',
    "duplicate keys": b'{"dup": 1, "dup": 2}',
    "whitespace around": b' \n\t {"x": 1} \r\n ',
    "scalars": b'"just a string"',
    "a number": b"-12.5e2",
}

MALFORMED_BODIES = {
    "cut short": b'{"title": ',
    "single quotes": b"{'title': 'x'}",
    "trailing comma": b'{"title": "x",}',
    "trailing garbage": b'{"title": "x"} and more',
    "two documents": b'{"title": "x"}{"title": "y"}',
    "unclosed list": b"[1, 2",
    "NaN": b'{"title": NaN}',
    "Infinity": b'{"title": -Infinity}',
    "invalid UTF-8": b'{"title": "\xff\xfe"}',
    "byte order mark": b'\xef\xbb\xbf{"title": "bom"}',
    "unterminated string": b'{"title": "x}',
    "leading zero": b'{"n": 01}',
    "raw control character": b'{"title": "a\x01b"}',
    "empty": b"",
}


def typed(value: Any) -> Any:
    """A value with its types spelled out (1, 1.0 and True compare equal in Python)."""
    if isinstance(value, dict):
        return ("dict", [(key, typed(item)) for key, item in value.items()])
    if isinstance(value, list):
        return ("list", [typed(item) for item in value])
    if isinstance(value, float):
        return ("float", repr(value))
    return (type(value).__name__, value)


def parse(parser: type[drf_parsers.BaseParser], body: bytes, charset: str | None = None) -> Any:
    context = {"encoding": charset} if charset else {}
    return parser().parse(io.BytesIO(body), "application/json", context)


@pytest.mark.parametrize("body", VALID_BODIES.values(), ids=VALID_BODIES.keys())
def test_the_parser_reads_what_drfs_parser_reads(body: bytes) -> None:
    assert typed(parse(JSONParser, body)) == typed(parse(drf_parsers.JSONParser, body))


def test_a_body_in_another_charset_is_read_as_drf_reads_it() -> None:
    body = '{"title": "café"}'.encode("latin-1")
    assert parse(JSONParser, body, "latin-1") == parse(drf_parsers.JSONParser, body, "latin-1")
    assert parse(JSONParser, body, "latin-1") == {"title": "café"}


@pytest.mark.parametrize("body", MALFORMED_BODIES.values(), ids=MALFORMED_BODIES.keys())
def test_the_parser_refuses_what_drfs_parser_refuses_with_its_message(body: bytes) -> None:
    with pytest.raises(ParseError) as ours:
        parse(JSONParser, body)
    with pytest.raises(ParseError) as drfs:
        parse(drf_parsers.JSONParser, body)
    assert str(ours.value.detail) == str(drfs.value.detail)


@pytest.fixture
def drf_parser(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Switches the video views to DRF's own JSON parser (the views hold their parser classes)."""

    def switch() -> None:
        for view in (VideoDetailView, VideoListView):
            monkeypatch.setattr(view, "parser_classes", [drf_parsers.JSONParser])

    return switch


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body", [b for name, b in MALFORMED_BODIES.items() if name != "empty"], ids=list(MALFORMED_BODIES)[:-1]
)
def test_malformed_json_through_the_api_is_drfs_400_and_changes_nothing(
    body: bytes, drf_parser: Callable[[], None]
) -> None:
    owner = UserFactory()
    video = VideoFactory(owner=owner, title="Unchanged")
    client = APIClient()
    client.force_authenticate(owner)

    def send() -> tuple[int, bytes, bytes]:
        patch = client.generic("PATCH", f"/api/videos/{video.pk}", body, content_type="application/json")
        create = client.generic("POST", "/api/videos", body, content_type="application/json")
        assert patch.status_code == create.status_code
        return patch.status_code, patch.content, create.content

    ours = send()
    drf_parser()
    assert send() == ours
    status, patch_body, _ = ours
    assert status == 400
    error = json.loads(patch_body)["error"]
    assert error["code"] == "malformed_request" and error["message"].startswith("JSON parse error - ")
    video.refresh_from_db()
    assert video.title == "Unchanged"
    assert Video.objects.count() == 1


@pytest.mark.django_db
def test_valid_json_through_the_api_is_taken_as_drf_takes_it(drf_parser: Callable[[], None]) -> None:
    owner = UserFactory()
    client = APIClient()
    client.force_authenticate(owner)
    body = '{"title": "caf\\u00e9 \u2028 \U0001f3ac", "tags": ["Alps", "alps", "日本"], "is_adult": false}'

    def create() -> dict[str, Any]:
        response = client.generic("POST", "/api/videos", body.encode(), content_type="application/json")
        assert response.status_code == 201, response.content
        answer: dict[str, Any] = response.json()
        return {key: answer[key] for key in ("title", "tags", "is_adult", "privacy")}

    ours = create()
    drf_parser()
    assert (
        create()
        == ours
        == {
            "title": "café \u2028 \U0001f3ac",
            "tags": ["alps", "日本"],
            "is_adult": False,
            "privacy": "public",
        }
    )


# --- Rendered bodies ------------------------------------------------------------------------------


@pytest.fixture
def rendered_cache_size(request: pytest.FixtureRequest) -> Iterator[int]:
    with override_settings(API_RENDERED_CACHE_SIZE=request.param):
        yield request.param


def serialized(video_id: str, fields: list[str] | None = None) -> bytes:
    """The answer DRF would give: its serializer and its renderer, from the database."""
    video = Video.objects.select_related("owner").get(pk=video_id)
    return drf_render(VideoSerializer(video, context={"fields": fields}).data)


@pytest.mark.django_db
@pytest.mark.parametrize("rendered_cache_size", [10_000, 0], indirect=True, ids=["kept", "off"])
def test_a_changed_video_is_shown_changed_at_once(rendered_cache_size: int) -> None:
    owner = UserFactory()
    video = VideoFactory(owner=owner, title="Before \u2028 \U0001f3ac", ready=True)
    others = VideoFactory.create_batch(2, ready=True)
    anonymous, owner_client = APIClient(), APIClient()
    owner_client.force_authenticate(owner)
    for _ in range(2):  # the second answer may come from what the first rendered
        detail = anonymous.get(f"/api/videos/{video.pk}")
        assert detail.content == serialized(video.pk)
        assert anonymous.get(f"/api/videos/{video.pk}?fields=id,title").content == serialized(
            video.pk, ["id", "title"]
        )
        feed = anonymous.get("/api/videos").json()
        assert [item["title"] for item in feed["data"]][-1] == "Before \u2028 \U0001f3ac"

    changed = owner_client.patch(f"/api/videos/{video.pk}", {"title": "After"}, format="json")
    assert changed.status_code == 200, changed.content

    detail = anonymous.get(f"/api/videos/{video.pk}")
    assert detail.json()["title"] == "After"
    assert detail.content == serialized(video.pk)
    assert anonymous.get(f"/api/videos/{video.pk}?fields=id,title").json() == {
        "id": video.pk,
        "title": "After",
    }
    feed = anonymous.get("/api/videos").json()
    assert [item["title"] for item in feed["data"]] == [v.title for v in reversed(others)] + ["After"]
    # The other videos' answers are untouched.
    for other in others:
        assert anonymous.get(f"/api/videos/{other.pk}").content == serialized(other.pk)


@pytest.mark.django_db
def test_an_indent_asked_for_after_a_kept_body_is_rendered_afresh() -> None:
    video = VideoFactory(title="Indented \u2029", ready=True)
    client = APIClient()
    compact = client.get(f"/api/videos/{video.pk}")
    assert compact.content == serialized(video.pk)
    indented = client.get(f"/api/videos/{video.pk}", HTTP_ACCEPT="application/json; indent=2")
    assert indented.status_code == 200 and b'\n  "id": ' in indented.content
    data = VideoSerializer(Video.objects.select_related("owner").get(pk=video.pk)).data
    assert indented.content == drf_render(data, "application/json; indent=2")
    assert client.get(f"/api/videos/{video.pk}").content == compact.content


def counting(body: str) -> tuple[Callable[[], Any], list[int]]:
    calls: list[int] = []

    def data() -> Any:
        calls.append(1)
        return {"body": body}

    return data, calls


def test_rendered_bodies_follow_the_key_and_reuse_an_unchanged_one() -> None:
    bodies = RenderedBodies(10)
    first, first_calls = counting("first")
    kept = bodies.body(("video", "v1", "title 1"), first)
    assert isinstance(kept, rendering.PreRendered) and kept.body == b'{"body":"first"}'
    again, again_calls = counting("something else")
    assert bodies.body(("video", "v1", "title 1"), again).body == b'{"body":"first"}'
    assert (len(first_calls), len(again_calls)) == (1, 0)  # the same content: rendered once
    changed, changed_calls = counting("second")
    assert bodies.body(("video", "v1", "title 2"), changed).body == b'{"body":"second"}'
    assert len(changed_calls) == 1


def test_rendered_bodies_stay_within_their_entry_bound() -> None:
    bodies = RenderedBodies(3)
    for index in range(5):
        data, _ = counting(f"body {index}")
        bodies.body(index, data)
    assert len(bodies._entries) == 3
    recent, recent_calls = counting("body 4")
    assert bodies.body(4, recent).body == b'{"body":"body 4"}' and not recent_calls
    oldest, oldest_calls = counting("body 0")
    assert bodies.body(0, oldest).body == b'{"body":"body 0"}' and len(oldest_calls) == 1  # rendered again
    assert len(bodies._entries) == 3


def test_rendered_bodies_stay_within_their_byte_bound() -> None:
    bodies = RenderedBodies(1000, max_bytes=1000)
    for index in range(10):
        data, _ = counting(f"{index}" * 300)
        bodies.body(index, data)
        assert bodies._size <= 1000
    assert list(bodies._entries) == [7, 8, 9]  # the most recent ones, about 310 bytes each
    assert bodies._size == sum(len(body) for body in bodies._entries.values())
    huge, _ = counting("x" * 2000)
    assert bodies.body("huge", huge).body == b'{"body":"' + b"x" * 2000 + b'"}'  # still answered...
    assert "huge" not in bodies._entries and bodies._size <= 1000  # ...not kept


@pytest.mark.django_db
def test_the_api_keeps_at_most_the_configured_number_of_bodies() -> None:
    videos = VideoFactory.create_batch(4, ready=True)
    client = APIClient()
    with override_settings(API_RENDERED_CACHE_SIZE=2):
        for video in videos:
            assert client.get(f"/api/videos/{video.pk}").content == serialized(video.pk)
        assert rendering.bodies().max_entries == 2
        assert len(rendering.bodies()._entries) == 2
    with override_settings(API_RENDERED_CACHE_SIZE=0):
        for video in videos:
            assert client.get(f"/api/videos/{video.pk}").content == serialized(video.pk)
        assert len(rendering.bodies()._entries) == 0


# --- Serializer templates ------------------------------------------------------------------------

FIELD_SELECTIONS = [None, ["id", "title"], ["owner", "created_at", "view_count", "tags"], list(VIDEO_FIELDS)]


@pytest.mark.django_db
@pytest.mark.parametrize("templates", [True, False], ids=["templates", "serializer per call"])
def test_represent_is_the_serializers_data(templates: bool) -> None:
    owner = UserFactory(display_name="Ōwner \u2028")
    videos = [
        VideoFactory(
            owner=owner, title="café 🎬", tags=["a", "b"], view_count=7, status=READY, duration=61.5
        ),
        VideoFactory(privacy=Video.Privacy.PRIVATE, is_adult=True, is_premium=True, tags=[]),
    ]
    videos = list(Video.objects.select_related("owner").order_by("created_at"))
    with override_settings(API_SERIALIZER_TEMPLATES=templates):
        # Selections in turn, and back: one selection's fields never leak into another's answer.
        for fields in [*FIELD_SELECTIONS, *reversed(FIELD_SELECTIONS)]:
            context = {"fields": fields}
            for video in videos:
                ours = represent(VideoSerializer, video, context=context)
                expected = VideoSerializer(video, context=context).data
                assert list(ours.items()) == list(expected.items())
            many = represent(VideoSerializer, videos, many=True, context=context)
            expected_many = VideoSerializer(videos, many=True, context=context).data
            assert [list(item.items()) for item in many] == [list(item.items()) for item in expected_many]
        # A changed instance is shown changed (a template keeps no data of its own).
        videos[0].title = "renamed"
        assert represent(VideoSerializer, videos[0], context={"fields": None})["title"] == "renamed"


# --- Content negotiation ---------------------------------------------------------------------------

UNSUPPORTED_ACCEPTS = ["text/html", "application/xml", "image/png", "text/csv; charset=utf-8"]
SUPPORTED_ACCEPTS = [
    "*/*",
    "application/*",
    "application/json",
    "application/json; indent=4",
    "text/html, */*",
]


def answers(client: APIClient, path: str, accept: str) -> list[tuple[int, str, bytes]]:
    """The answer with the memo on, off, and on again (now possibly remembered)."""
    found = []
    for memo in (True, False, True, True):
        with override_settings(API_NEGOTIATION_MEMO=memo):
            response = client.get(path, HTTP_ACCEPT=accept)
            found.append((response.status_code, response["Content-Type"], response.content))
    return found


@pytest.mark.django_db
@pytest.mark.parametrize("accept", UNSUPPORTED_ACCEPTS)
def test_an_unsupported_accept_gets_drfs_406_with_and_without_the_memo(accept: str) -> None:
    video = VideoFactory(ready=True)
    client = APIClient()
    for path in (f"/api/videos/{video.pk}", "/api/videos"):
        found = answers(client, path, accept)
        assert len(set(found)) == 1, found
        status, content_type, body = found[0]
        assert (status, content_type) == (406, "application/json")
        assert json.loads(body) == {
            "error": {"code": "not_acceptable", "message": "Could not satisfy the request Accept header."}
        }
        # The refusal is not remembered as an answer: an acceptable request is still served.
        assert client.get(path, HTTP_ACCEPT="application/json").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("accept", SUPPORTED_ACCEPTS)
def test_a_supported_accept_gets_the_same_answer_with_and_without_the_memo(accept: str) -> None:
    video = VideoFactory(ready=True)
    client = APIClient()
    for path in (f"/api/videos/{video.pk}", "/api/videos", f"/api/videos/{video.pk}?format=json"):
        found = answers(client, path, accept)
        assert len(set(found)) == 1, found
        assert found[0][0] == 200
        assert json.loads(found[0][2])


@pytest.mark.django_db
def test_an_unknown_format_is_the_same_404_with_and_without_the_memo() -> None:
    video = VideoFactory(ready=True)
    found = answers(APIClient(), f"/api/videos/{video.pk}?format=xml", "*/*")
    assert len(set(found)) == 1, found
    assert found[0][0] == 404 and json.loads(found[0][2])["error"]["code"] == "not_found"


# --- Compressed bodies ------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("reuse", [True, False], ids=["reused", "afresh"])
def test_compressed_answers_decode_to_the_plain_answer(reuse: bool) -> None:
    VideoFactory.create_batch(12, ready=True, description="A long enough description. " * 4)
    with override_settings(COMPRESSION_REUSE=reuse):
        client = APIClient()  # a new client builds the middleware under the setting
        plains = {}
        for path in ("/api/videos", "/api/videos?fields=id,title,description", "/api/videos?limit=6"):
            plain = client.get(path, HTTP_ACCEPT_ENCODING="identity")
            assert plain.status_code == 200 and len(plain.content) > 1024
            assert not plain.has_header("Content-Encoding")
            plains[path] = plain.content
        assert len(set(plains.values())) == 3
        for _ in range(2):  # the second round may reuse what the first compressed
            for path, plain_body in plains.items():
                for encoding, decode in (("gzip", gzip.decompress), ("br", brotli.decompress)):
                    response = client.get(path, HTTP_ACCEPT_ENCODING=encoding)
                    assert response["Content-Encoding"] == encoding
                    assert decode(response.content) == plain_body
