"""A view's word that its answer is the same for a whole audience (the response cache keeps such
answers: ``videoplatform.entry.response_cache``). Views call ``share``, or ``never`` when their
answer is the viewer's own whatever the data; whoever keeps answers registers listeners at
start-up. With none registered, both do nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final

# Audiences: who is known to get the same body as the viewer the answer was built for.
EVERYONE: Final = "everyone"
BY_ADULT: Final = "by_adult"  # the same for every viewer with the same adult-content preference
AUDIENCES: Final = (EVERYONE, BY_ADULT)

# How the view authenticates: DRF's default classes (bearer token, then session), or none at all.
DEFAULT_AUTH: Final = "default"
NO_AUTH: Final = "none"

Listener = Callable[..., None]
_listener: Listener | None = None
_never_listener: Callable[[Any], None] | None = None


def register(listener: Listener | None, *, never: Callable[[Any], None] | None = None) -> None:
    """Sets who hears ``share`` and ``never`` (None: nobody)."""
    global _listener, _never_listener
    _listener = listener
    _never_listener = never


def never(request: Any) -> None:
    """No answer of this view at this path is the same for two viewers, whatever the data (a
    signed URL, the viewer's own account): whoever keeps answers stops considering the path.
    Only for views whose every answer is per viewer; a view that shares some answers (a public
    video's) and not others (a private one's) does not call it."""
    if _never_listener is not None:
        _never_listener(request)


def share(
    request: Any, *, audience: str = EVERYONE, auth: str = DEFAULT_AUTH, params: Iterable[str] = ()
) -> None:
    """This request's answer is the same for everyone in ``audience`` (with the same path,
    query and negotiated representation). ``params`` names every query parameter the view
    reads: a request with another one is not shared (Django gives it the same answer as without,
    under a key of its own). Only for views that authenticate with DRF's default classes (or
    none: ``auth=NO_AUTH``) and throttle with the API-wide throttle alone."""
    if audience not in AUDIENCES:
        raise ValueError(f"Unknown audience {audience!r}")
    if _listener is not None:
        _listener(request, audience=audience, auth=auth, params=params)
