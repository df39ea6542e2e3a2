"""Hostile uploads against a real gunicorn: every one gets a clean 4xx JSON error, leaves no
partial record and no file behind (in MEDIA_ROOT or the server's temporary folder).

Both intake paths are covered: a multipart ``POST /api/videos/create`` carrying the file, and the
API upload URL ``PUT /api/videos/{id}/upload`` whose body is the file. Truncated bodies and huge
declared lengths are sent over a raw socket, as a misbehaving client would.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from accounts import services
from streaming.models import MediaFile
from tests.factories import UserFactory
from tests.security.conftest import live_database_url
from tests.support.processes import base_env, gunicorn
from videos.models import Video

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

UPLOAD_LIMIT = 2_000_000


@dataclass
class Server:
    url: str
    media: Path
    tmp: Path

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def files(self) -> list[str]:
        return sorted(
            str(path) for folder in (self.media, self.tmp) for path in folder.rglob("*") if path.is_file()
        )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, django_db_setup: Any) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("uploads")
    media, tmp = folder / "media", folder / "tmp"
    media.mkdir()
    tmp.mkdir()
    env = base_env(
        DJANGO_SETTINGS_MODULE="settings.test",
        DATABASE_URL=live_database_url(),
        REDIS_URL=os.environ["REDIS_URL"],
        VAR_DIR=str(folder / "var"),
        MEDIA_ROOT=str(media),
        TMPDIR=str(tmp),
        MEDIA_UPLOAD_MAX_BYTES=str(UPLOAD_LIMIT),
    )
    with gunicorn(env, workers=2) as url:
        yield Server(url=url, media=media, tmp=tmp)


@pytest.fixture
def uploader(db: Any) -> dict[str, Any]:
    user = UserFactory()
    return {"user": user, "auth": {"Authorization": f"Bearer {services.token_issue(user=user).token}"}}


def _assert_clean_error(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    assert response.status_code in statuses, f"{response.status_code}: {response.text[:300]}"
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] and body["error"]["message"]
    return dict(body)


def _multipart_create(
    server: Server, auth: dict[str, str], name: str, content: bytes, ctype: str
) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/videos/create",
        data={"title": "hostile"},
        files={"file": (name, content, ctype)},
        headers=auth,
        timeout=60,
    )


# --- multipart create ------------------------------------------------------------------------

BAD_FILES = {
    "zero bytes": (b"", "video/mp4"),
    "not a video": (b"this is plain text, not a video\n" * 200, "video/mp4"),
    "an image calling itself a video": (
        bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108000000003a7e9b55"),
        "video/mp4",
    ),
    "a script with a video extension": (b"#!/bin/sh\nrm -rf /\n", "application/octet-stream"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_multipart_with_a_bad_file_is_refused_and_leaves_nothing(
    server: Server, uploader: dict[str, Any], case: str
) -> None:
    content, ctype = BAD_FILES[case]
    before = server.files()
    response = _multipart_create(server, uploader["auth"], "clip.mp4", content, ctype)
    _assert_clean_error(response, 400, 422)
    assert not Video.objects.filter(owner=uploader["user"]).exists()
    assert server.files() == before, set(server.files()) - set(before)


def test_a_truncated_video_is_refused_and_leaves_nothing(
    server: Server, uploader: dict[str, Any], small_clip: Path
) -> None:
    data = small_clip.read_bytes()
    before = server.files()
    response = _multipart_create(server, uploader["auth"], "clip.mp4", data[: len(data) // 3], "video/mp4")
    _assert_clean_error(response, 422)
    assert not Video.objects.filter(owner=uploader["user"]).exists()
    assert server.files() == before


def test_over_the_limit_while_streaming_is_413_and_leaves_nothing(
    server: Server, uploader: dict[str, Any]
) -> None:
    before = server.files()
    response = _multipart_create(
        server, uploader["auth"], "big.mp4", os.urandom(UPLOAD_LIMIT + 1), "video/mp4"
    )
    _assert_clean_error(response, 413)
    assert not Video.objects.filter(owner=uploader["user"]).exists()
    assert server.files() == before


def _raw(server: Server, head: str, body: bytes, *, close_early: bool = False) -> tuple[int, bytes]:
    """Sends a request over a raw socket; (status, body), status 0 when the server sent nothing."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head.encode() + body)
        if close_early:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
    raw = b"".join(chunks)
    if not raw:
        return 0, b""
    status = int(raw.split(b" ", 2)[1])
    return status, raw.split(b"\r\n\r\n", 1)[-1]


def _head(method: str, path: str, auth: dict[str, str], length: int, ctype: str) -> str:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Authorization: {auth['Authorization']}\r\nContent-Type: {ctype}\r\nContent-Length: {length}\r\n\r\n"
    )


def test_a_huge_declared_length_is_refused_before_the_body_is_read(
    server: Server, uploader: dict[str, Any]
) -> None:
    boundary = "b0undary"
    body = f'--{boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\nx\r\n'.encode()
    head = _head(
        "POST", "/api/videos/create", uploader["auth"], 10**13, f"multipart/form-data; boundary={boundary}"
    )
    status, answer = _raw(server, head, body, close_early=True)
    assert status == 413, answer[:300]
    assert json.loads(answer)["error"]["code"] == "payload_too_large"
    assert not Video.objects.filter(owner=uploader["user"]).exists()


def test_a_multipart_body_cut_short_leaves_nothing(
    server: Server, uploader: dict[str, Any], small_clip: Path
) -> None:
    boundary = "cutshort"
    data = small_clip.read_bytes()
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\ncut\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="cut.mp4"\r\n'
        f"Content-Type: video/mp4\r\n\r\n"
    ).encode() + data
    body += f"\r\n--{boundary}--\r\n".encode()
    before = server.files()
    head = _head(
        "POST", "/api/videos/create", uploader["auth"], len(body), f"multipart/form-data; boundary={boundary}"
    )
    status, answer = _raw(server, head, body[: len(body) // 2], close_early=True)
    assert status in (0, 400), answer[:300]  # the client is gone: an answer is optional, a 5xx is not
    if status:
        assert json.loads(answer)["error"]["code"]
    assert not Video.objects.filter(owner=uploader["user"]).exists()
    assert server.files() == before


PATH_LIKE_NAMES = [
    "../../etc/passwd",
    "/etc/passwd",
    "..\\..\\windows\\system32\\cmd.exe",
    "a\x00b.mp4",
    "x" * 5000 + ".mp4",
    "....//....//x.mp4",
    "%2e%2e%2fescape.mp4",
]


@pytest.mark.parametrize("name", PATH_LIKE_NAMES, ids=range(len(PATH_LIKE_NAMES)))
def test_path_like_file_names_stay_inside_the_video_folder(
    server: Server, uploader: dict[str, Any], small_clip: Path, name: str
) -> None:
    before = server.files()
    response = _multipart_create(server, uploader["auth"], name, small_clip.read_bytes(), "video/mp4")
    if response.status_code >= 400:  # refusing the name is fine, if cleanly
        _assert_clean_error(response, 400, 422)
        assert not Video.objects.filter(owner=uploader["user"]).exists()
        assert server.files() == before
        return
    assert response.status_code == 201, response.text
    video_id = response.json()["id"]
    source = MediaFile.objects.get(video_id=video_id).source_path
    stored = (server.media / source).resolve()
    assert stored.is_relative_to((server.media / "videos" / video_id).resolve()), source
    assert stored.is_file() and "\x00" not in source and len(Path(source).name) <= 255
    new_files = sorted(set(server.files()) - set(before))
    assert new_files == [str(server.media / source)]


# --- the API upload URL (PUT, the body is the file) ------------------------------------------


@pytest.fixture
def awaiting(server: Server, uploader: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(
        f"{server.url}/api/videos",
        json={"title": "waiting for its file", "file_name": "../../../etc/shadow"},
        headers=uploader["auth"],
    )
    assert response.status_code == 201, response.text
    return {**uploader, "id": response.json()["id"], "upload": response.json()["upload"]}


def _media_state(video_id: str) -> tuple[str, str]:
    media = MediaFile.objects.get(video_id=video_id)
    return media.status, media.source_path


def test_the_upload_target_name_cannot_escape(awaiting: dict[str, Any]) -> None:
    _status, source = _media_state(awaiting["id"])
    assert source.startswith(f"videos/{awaiting['id']}/source/")
    assert ".." not in source.split("/")


@pytest.mark.parametrize(
    ("case", "length", "send", "statuses"),
    [
        ("zero bytes", 0, b"", (400,)),
        ("huge declared length", 10**13, b"x" * 100, (413,)),
        ("over the limit", UPLOAD_LIMIT + 1, b"", (413,)),
    ],
)
def test_put_refuses_bad_lengths_and_changes_nothing(
    server: Server, awaiting: dict[str, Any], case: str, length: int, send: bytes, statuses: tuple[int, ...]
) -> None:
    before_state, before_files = _media_state(awaiting["id"]), server.files()
    head = _head("PUT", f"/api/videos/{awaiting['id']}/upload", awaiting["auth"], length, "video/mp4")
    status, answer = _raw(server, head, send, close_early=True)
    assert status in statuses, (case, status, answer[:300])
    assert json.loads(answer)["error"]["code"]
    assert _media_state(awaiting["id"]) == before_state
    assert server.files() == before_files


def test_put_without_a_length_is_411(server: Server, awaiting: dict[str, Any]) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"not a video"

    response = httpx.put(
        f"{server.url}/api/videos/{awaiting['id']}/upload",
        content=chunks(),
        headers={**awaiting["auth"], "Content-Type": "video/mp4"},
    )
    _assert_clean_error(response, 411)
    assert _media_state(awaiting["id"])[0] == "awaiting_upload"


def test_put_cut_short_is_refused_and_leaves_nothing(
    server: Server, awaiting: dict[str, Any], small_clip: Path
) -> None:
    data = small_clip.read_bytes()
    before_state, before_files = _media_state(awaiting["id"]), server.files()
    head = _head("PUT", f"/api/videos/{awaiting['id']}/upload", awaiting["auth"], len(data), "video/mp4")
    status, answer = _raw(server, head, data[: len(data) // 2], close_early=True)
    assert status in (0, 400), answer[:300]
    if status:
        assert json.loads(answer)["error"]["code"] == "incomplete_upload"
    assert _media_state(awaiting["id"]) == before_state
    assert server.files() == before_files


@pytest.mark.parametrize(
    ("content", "ctype"),
    [(b"plain text " * 500, "video/mp4"), (b"\x00" * 4096, "application/octet-stream")],
    ids=["text-as-video", "zeros"],
)
def test_put_of_a_non_video_is_422_and_keeps_no_file(
    server: Server, awaiting: dict[str, Any], content: bytes, ctype: str
) -> None:
    before_files = server.files()
    response = httpx.put(
        f"{server.url}/api/videos/{awaiting['id']}/upload",
        content=content,
        headers={**awaiting["auth"], "Content-Type": ctype},
    )
    body = _assert_clean_error(response, 422)
    assert body["error"]["code"] == "invalid_media"
    assert server.files() == before_files
    assert Video.objects.filter(owner=awaiting["user"]).count() == 1


def test_unknown_video_ids_are_404_without_reading_the_body(server: Server, uploader: dict[str, Any]) -> None:
    response = httpx.put(
        f"{server.url}/api/videos/vid_{uuid.uuid4().hex[:22]}/upload",
        content=b"x" * 1000,
        headers={**uploader["auth"], "Content-Type": "video/mp4"},
    )
    _assert_clean_error(response, 404)
