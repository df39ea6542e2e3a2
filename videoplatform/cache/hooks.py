"""What the tiers tell whoever listens about the current request's reads, without knowing who.

The tiers call ``note_read`` (this request used an L1 entry), ``taint`` (it read something other
than L1) and ``loading`` (SQL run in this block loads an entry). They do nothing until an upper
layer registers an ``Observer`` at start-up: the response cache does
(``videoplatform.entry.response_cache.install``, from ``VideoplatformConfig.ready``). One
observer at a time; registering another replaces it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol


class Observer(Protocol):
    def read(self, tier: Any, key: Any, entry: Any) -> None: ...

    def tainted(self) -> None: ...

    def loading(self) -> AbstractContextManager[None]: ...


_observer: Observer | None = None


def register(observer: Observer | None) -> None:
    """Sets the observer (None: nobody listens)."""
    global _observer
    _observer = observer


def note_read(tier: Any, key: Any, entry: Any) -> None:
    """This request used L1 ``entry`` of ``tier`` under ``key``."""
    if _observer is not None:
        _observer.read(tier, key, entry)


def taint() -> None:
    """This request read something other than L1."""
    if _observer is not None:
        _observer.tainted()


@contextmanager
def loading() -> Iterator[None]:
    """SQL run in this block loads a cache entry."""
    if _observer is None:
        yield
        return
    with _observer.loading():
        yield
