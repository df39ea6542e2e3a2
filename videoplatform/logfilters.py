"""Logging filters.

``Repeats`` keeps an outage from flooding the logs: django-redis logs every exception it ignores
with its traceback (``DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS``), which during a Redis outage is one
traceback per cache call (about a hundred a second per pod). The first record of a kind (logger,
message and exception type) passes with its traceback; the same kind is then held back for
``seconds``, and the next one that passes says how many were held back.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Final

_KINDS_MAX: Final = 1024


class Repeats(logging.Filter):
    def __init__(self, seconds: float = 10.0) -> None:
        super().__init__()
        self.seconds = float(seconds)
        self._lock = threading.Lock()
        self._kinds: dict[tuple[str, str, str], tuple[float, int]] = {}  # kind -> (passed at, held)

    def filter(self, record: logging.LogRecord) -> bool:
        exc_type = record.exc_info[0] if record.exc_info else None
        kind = (record.name, str(record.msg), exc_type.__name__ if exc_type else "")
        now = time.monotonic()
        with self._lock:
            passed_at, held = self._kinds.get(kind, (float("-inf"), 0))
            if now - passed_at < self.seconds:
                self._kinds[kind] = (passed_at, held + 1)
                return False
            if len(self._kinds) >= _KINDS_MAX:
                self._kinds.clear()
            self._kinds[kind] = (now, 0)
        if held:
            since = now - passed_at
            record.msg = f"{record.msg} ({held} more like this in the last {since:.0f} s not logged)"
        return True
