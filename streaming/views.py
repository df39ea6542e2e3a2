"""Pages and media outside the API: signed media (HLS playlists, segments, images) and the watch page."""

from __future__ import annotations

import functools
import re

from django.conf import settings
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from videos.selectors import video_access_epoch, video_get

from . import ladder, signing, storage
from .live.selectors import live_stream_id_for_video

# Playlists are re-checked at least this often (the player fetches them again with the same URL).
PLAYLIST_MAX_AGE = 60
_RENDITION_FILE = re.compile(r"^(\d{2,4})p/(index\.m3u8|seg_\d{5,}\.ts)$")
_IMAGE_FILE = re.compile(r"^(poster\.jpg|thumbs/thumb_\d{4,}\.jpg)$")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _forbidden(message: str) -> HttpResponse:
    return _refused(403, message)


def _refused(status: int, message: str) -> HttpResponse:
    response = HttpResponse(message + "\n", status=status, content_type="text/plain; charset=utf-8")
    response["Cache-Control"] = "no-store"
    return response


@functools.lru_cache(maxsize=1024)
def _stored_text(name: str) -> str:
    # Outputs of a run never change (a re-run writes a new folder), so caching by name is safe.
    return storage.read_text(name)


def _cdn_playlist(text: str, prefix: str, folder: str, grant: signing.StreamGrant) -> str:
    """A media playlist whose segments point at CloudFront, signed for this rendition's folder."""
    base = signing.cdn_url(storage.object_key(f"{prefix}/{folder}"))
    query = signing.cloudfront_query(f"{base}/*", grant.expires_at)
    lines = [
        line if not line or line.startswith("#") else f"{base}/{line}?{query}" for line in text.splitlines()
    ]
    return "\n".join(lines) + "\n"


def file_cache_control(grant: signing.StreamGrant) -> str:
    """Segments and images under a token: a token names no viewer and is shared by everyone
    asking within its expiry bucket, so shared caches may keep the file, but no longer than
    ``STREAM_SHARED_MAX_AGE`` (a revocation reaches the CDN within that) nor past the token's
    expiry; the viewer's browser keeps it until the token expires (the file never changes)."""
    left = grant.seconds_left()
    return f"public, max-age={left}, s-maxage={min(left, settings.STREAM_SHARED_MAX_AGE)}, immutable"


def _parse_range(header: str, size: int) -> tuple[int, int] | str | None:
    """(start, end) inclusive, None to send everything, or "unsatisfiable"."""
    match = _RANGE.match(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        return None  # malformed or several ranges: a full answer is allowed
    first, last = match.groups()
    if not first:
        length = int(last)
        if length == 0:
            return "unsatisfiable"
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        return "unsatisfiable"
    return start, end


def _binary(request: HttpRequest, name: str, grant: signing.StreamGrant) -> HttpResponseBase:
    try:
        size = storage.file_size(name)
    except FileNotFoundError as exc:
        raise Http404("No such file.") from exc
    content_type = storage.content_type_for(name)
    wanted = _parse_range(request.headers.get("Range", ""), size) if "Range" in request.headers else None
    if wanted == "unsatisfiable":
        response: HttpResponseBase = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        return response
    start, end = wanted if isinstance(wanted, tuple) else (0, size - 1)
    length = end - start + 1 if size else 0
    if request.method == "HEAD" or length == 0:
        response = HttpResponse(status=206 if isinstance(wanted, tuple) else 200, content_type=content_type)
    else:
        chunks, _total = storage.open_range(name, start, end)
        response = StreamingHttpResponse(
            chunks, status=206 if isinstance(wanted, tuple) else 200, content_type=content_type
        )
    response["Content-Length"] = str(length)
    if isinstance(wanted, tuple):
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
    response["Accept-Ranges"] = "bytes"
    response["Cache-Control"] = file_cache_control(grant)
    return response


@require_http_methods(["GET", "HEAD"])
def media_serve(request: HttpRequest, token: str, path: str) -> HttpResponseBase:
    """Serves one file of a video's ladder to the holder of a valid token.

    Segments and images are immutable and cacheable by shared caches for a bounded time
    (``file_cache_control``); playlists for a minute at most. A rung above the token's cap is
    refused; so is every file of a deleted video (404) or of a token signed before the video's
    access changed (403).
    """
    try:
        grant = signing.grant_from_token(token)
    except signing.InvalidToken as exc:
        return _forbidden(f"Invalid or expired link: {exc}")
    # A link outlives neither its video nor a change of who may watch it (cached: no query).
    epoch = video_access_epoch(video_id=grant.video_id)
    if epoch is None:
        return _refused(404, "This video no longer exists.")
    if epoch != grant.epoch:
        return _refused(403, "This link was revoked (the video's access changed); ask for a new one.")
    prefix = storage.output_prefix(grant.video_id, grant.run_token)
    rendition = _RENDITION_FILE.match(path)
    if path == ladder.MASTER_PLAYLIST:
        name = f"{prefix}/{ladder.master_name(grant.cap)}"
    elif rendition:
        if int(rendition.group(1)) > grant.cap:
            return _forbidden("This rendition is above what your plan allows.")
        name = f"{prefix}/{path}"
    elif _IMAGE_FILE.match(path):
        name = f"{prefix}/{path}"
    else:
        raise Http404("No such file.")

    if name.endswith(".m3u8"):
        try:
            text = _stored_text(name)
        except (FileNotFoundError, OSError) as exc:
            raise Http404("No such playlist.") from exc
        if rendition and signing.cloudfront_enabled():
            text = _cdn_playlist(text, prefix, f"{rendition.group(1)}p", grant)
        response: HttpResponseBase = HttpResponse(
            b"" if request.method == "HEAD" else text.encode(), content_type="application/vnd.apple.mpegurl"
        )
        response["Content-Length"] = str(len(text.encode()))
        response["Cache-Control"] = f"public, max-age={min(grant.seconds_left(), PLAYLIST_MAX_AGE)}"
    else:
        response = _binary(request, name, grant)
    response["Access-Control-Allow-Origin"] = "*"
    response["Access-Control-Expose-Headers"] = "Content-Length, Content-Range"
    return response


@require_http_methods(["GET", "HEAD"])
def watch(request: HttpRequest, video_id: str) -> HttpResponse:
    """The watch page: plays the video with hls.js (404 when the viewer may not see it). The
    video of a live broadcast not yet over sends the viewer to the live player."""
    video = video_get(video_id=video_id, viewer=request.user)
    if video.status != video.Status.READY:
        live_id = live_stream_id_for_video(video_id=video.pk)
        if live_id is not None:
            return HttpResponseRedirect(f"/watch/live/{live_id}")
    response = render(
        request,
        "streaming/watch.html",
        {
            "video": video,
            "stream_url": f"/api/videos/{video.pk}/stream",
            "heartbeat_seconds": settings.STREAM_HEARTBEAT_INTERVAL,
        },
    )
    response["Cache-Control"] = "private, no-cache"
    return response
