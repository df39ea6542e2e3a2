"""Live outside the API: the ingest's hooks, the signed live HLS, and the live watch page.

The hooks are called by nginx-rtmp (form posts; it cannot add headers, so the shared secret
is in the query string) and by the ingest's packager. Their answers follow nginx-rtmp's rule:
2xx allows, a 3xx ``Location`` renames the stream, anything else drops the connection.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import urllib3
from django.conf import settings
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from streaming import signing
from videos.selectors import video_access_epoch

from . import selectors, services
from .exceptions import HookForbidden, LiveError, LiveNotFound, PublishRefused
from .models import LiveSession

logger = logging.getLogger(__name__)

PLAYLIST_CACHE = "public, max-age=1"
SEGMENT_CACHE = "public, max-age=31536000, immutable"
_RENDITION_FILE = re.compile(r"^(src|\d{3,4}p)/(index\.m3u8|seg_\d{5,}\.ts)$")


def _text(status: int, message: str) -> HttpResponse:
    response = HttpResponse(message + "\n", status=status, content_type="text/plain; charset=utf-8")
    response["Cache-Control"] = "no-store"
    return response


def _origin(request: HttpRequest) -> str:
    return request.GET.get("origin") or settings.LIVE_ORIGIN_URL


def hook(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Checks the shared secret (403, logged, when wrong) and maps live errors to statuses."""

    @csrf_exempt
    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            services.hook_secret_check(secret=request.GET.get("secret", ""))
        except HookForbidden:
            logger.warning(
                "live hook refused: bad secret from %s on %s",
                request.META.get("REMOTE_ADDR"),
                request.path,
                extra={"path": request.path},
            )
            return _text(403, "Bad or missing hook secret.")
        if request.method not in ("GET", "POST"):
            return _text(405, "Method not allowed.")
        try:
            return view(request, *args, **kwargs)
        except LiveError as exc:
            return _text(exc.status, exc.message)

    return wrapped


@hook
def hook_publish(request: HttpRequest) -> HttpResponse:
    """``on_publish``: 302 to the session id (the stream's new name), or 403."""
    if request.POST.get("call", "publish") != "publish" or request.POST.get("app") != "live":
        return _text(403, "Only publishing to the live application is allowed.")
    try:
        session = services.live_publish_authorize(
            key=request.POST.get("name", ""),
            origin_url=_origin(request),
            client_id=request.POST.get("clientid", ""),
            client_addr=request.POST.get("addr", "")[:64],
        )
    except PublishRefused as exc:
        logger.info("live publish refused from %s: %s", request.POST.get("addr"), exc.message)
        return _text(403, exc.message)
    response = HttpResponse(status=302)
    response["Location"] = session.pk
    return response


@hook
def hook_publish_done(request: HttpRequest) -> HttpResponse:
    services.live_publish_done(
        key=request.POST.get("name", ""),
        origin_url=_origin(request),
        client_id=request.POST.get("clientid", ""),
    )
    return _text(200, "ok")


@hook
def hook_update(request: HttpRequest) -> HttpResponse:
    """``on_update``: a publisher's heartbeat; 403 drops it (ended, disabled, key rotated)."""
    if request.POST.get("call") != "update_publish":
        return _text(200, "ok")  # the packager's own reading connection
    alive = services.live_publish_update(
        key=request.POST.get("name", ""),
        origin_url=_origin(request),
        client_id=request.POST.get("clientid", ""),
    )
    return _text(200, "ok") if alive else _text(403, "This broadcast is over.")


def _session(session_id: str) -> LiveSession:
    session = LiveSession.objects.filter(pk=session_id).first()
    if session is None:
        raise LiveError("No such session.")
    return session


@hook
def hook_session_config(request: HttpRequest, session_id: str) -> HttpResponse:
    return JsonResponse(services.live_session_config(session=_session(session_id)))


@hook
def hook_session_ready(request: HttpRequest, session_id: str) -> HttpResponse:
    if request.method != "POST":
        return _text(405, "POST the renditions.")
    try:
        payload = json.loads(request.body or b"{}")
    except ValueError as exc:
        raise LiveError("The body must be JSON.") from exc
    session = services.live_session_ready(session_id=session_id, renditions=payload.get("renditions"))
    if session is None:
        raise LiveError("No such session.")
    return JsonResponse({"status": session.status})


@hook
def hook_session_recording(request: HttpRequest, session_id: str) -> HttpResponse:
    if request.method != "POST":
        return _text(405, "POST the recording.")
    length = request.META.get("CONTENT_LENGTH")
    name = services.live_recording_store(
        session_id=session_id,
        part=request.GET.get("part", ""),
        body=request,  # read in chunks, never whole into memory
        size=int(length) if length and length.isdigit() else None,
    )
    return JsonResponse({"stored": name})


# --- Signed live HLS ------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _pool() -> urllib3.PoolManager:
    return urllib3.PoolManager(
        num_pools=64, maxsize=16, timeout=urllib3.Timeout(connect=2, read=10), retries=False
    )


def _from_origin(session: LiveSession, path: str) -> urllib3.BaseHTTPResponse:
    url = f"{session.origin_url.rstrip('/')}/{session.pk}/{path}"
    try:
        return _pool().request("GET", url, preload_content=False)
    except urllib3.exceptions.HTTPError as exc:
        logger.warning("live origin unreachable for %s: %s", session.pk, exc)
        raise Http404("The live origin is unreachable.") from exc


def _chunks(upstream: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    try:
        yield from upstream.stream(64 * 1024)
    finally:
        upstream.release_conn()


@require_http_methods(["GET", "HEAD"])
def live_media(request: HttpRequest, token: str, path: str) -> HttpResponseBase:
    """One file of a live broadcast for the holder of a valid token: the master (made here,
    holding the rungs the token allows), media playlists (``max-age=1``) and segments
    (immutable), read from the ingest that holds the session. The stream key is nowhere in
    these paths: the ingest names everything by the session."""
    try:
        grant = signing.grant_from_token(token)
    except signing.InvalidToken as exc:
        return _text(403, f"Invalid or expired link: {exc}")
    # As for VOD: a link does not outlive a change of who may watch (cached: no query).
    epoch = video_access_epoch(video_id=grant.video_id)
    if epoch is not None and epoch != grant.epoch:
        return _text(403, "This link was revoked (the broadcast's access changed); ask for a new one.")
    session = selectors.session_for_grant(grant=grant)
    if session is None or session.status not in selectors.WATCHABLE:
        raise Http404("This broadcast is not live.")
    if path == "master.m3u8":
        text = selectors.master_playlist(session=session, cap=grant.cap)
        response: HttpResponseBase = HttpResponse(
            b"" if request.method == "HEAD" else text.encode(), content_type="application/vnd.apple.mpegurl"
        )
        response["Cache-Control"] = PLAYLIST_CACHE
        response["Access-Control-Allow-Origin"] = "*"
        return response
    match = _RENDITION_FILE.match(path)
    if not match:
        raise Http404("No such file.")
    rendition = next((r for r in session.renditions if r["name"] == match.group(1)), None)
    if rendition is None:
        raise Http404("No such rendition.")
    if min(int(rendition["width"]), int(rendition["height"])) > grant.cap:
        return _text(403, "This rendition is above what your plan allows.")
    upstream = _from_origin(session, path)
    if upstream.status != 200:
        upstream.release_conn()
        raise Http404("Not (or no longer) on the live origin.")
    if path.endswith(".m3u8"):
        body = upstream.read()
        upstream.release_conn()
        selectors.live_viewer_seen(session_id=session.pk, viewer=token.rsplit(".", 1)[-1])
        response = HttpResponse(
            b"" if request.method == "HEAD" else body, content_type="application/vnd.apple.mpegurl"
        )
        response["Cache-Control"] = PLAYLIST_CACHE
    else:
        response = StreamingHttpResponse(_chunks(upstream), content_type="video/mp2t")
        if upstream.headers.get("Content-Length"):
            response["Content-Length"] = upstream.headers["Content-Length"]
        response["Cache-Control"] = SEGMENT_CACHE
    response["Access-Control-Allow-Origin"] = "*"
    return response


@require_http_methods(["GET", "HEAD"])
def watch_live(request: HttpRequest, live_id: str) -> HttpResponse:
    """The live watch page (hls.js); once the broadcast has ended, its replay."""
    try:
        stream = selectors.live_stream_get(live_id=live_id, viewer=request.user)
    except LiveNotFound as exc:
        raise Http404(str(exc)) from exc
    session = stream.session
    video = stream.video
    stream_url = f"/api/live/{stream.pk}/stream"
    if session is not None and session.status == LiveSession.Status.ENDED and session.record:
        video = session.video
        stream_url = f"/api/videos/{session.video_id}/stream"
    response = render(request, "streaming/watch.html", {"video": video, "stream_url": stream_url})
    response["Cache-Control"] = "private, no-cache"
    return response
