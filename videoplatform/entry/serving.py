"""gunicorn's access log as one JSON object per line."""

from __future__ import annotations

import json
import os
from typing import Any

from gunicorn.glogging import Logger


class JsonAccessLogger(Logger):
    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not (self.cfg.accesslog or self.cfg.logconfig or self.cfg.syslog):
            return
        atoms = self.atoms(resp, req, environ, request_time)
        record = {
            "time": atoms["t"].strip("[]"),
            "remote": atoms["h"],
            "method": atoms["m"],
            "path": atoms["U"],
            "query": atoms["q"],
            "status": int(atoms["s"]) if str(atoms["s"]).isdigit() else atoms["s"],
            "bytes": atoms["B"],
            "duration_ms": round(request_time.total_seconds() * 1000, 2),
            "user_agent": atoms["a"],
            "request_id": environ.get("HTTP_X_REQUEST_ID", ""),
            "pid": os.getpid(),
        }
        try:
            self.access_log.info(json.dumps(record, default=str))
        except Exception:  # noqa: BLE001 - a log line must never fail a request
            self.error_log.exception("Failed to write the access log")
