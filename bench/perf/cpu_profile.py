"""CPU per request, by endpoint and by area: the mix replayed through the WSGI handler in one
process (no gunicorn, one thread), timed on thread CPU time and profiled with cProfile on the
same clock, so waits for PostgreSQL and Redis count as nothing, unlike in a wall-clock sampler.

Run by the harness as ``python -m bench.perf.cpu_profile REQUESTS_FILE COUNT OUT_JSON`` with the
platform's production environment; it prints nothing and writes its summary as JSON.
"""

from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from .profiles import AREAS

WARM_UP = 300
ROOT = str(Path(__file__).resolve().parents[2]) + "/"


def _environ(line: str) -> tuple[str, dict[str, Any]]:
    name, method, path, token, body = line.split("\t")
    route, _, query = path.partition("?")
    data = b"" if body == "-" else body.encode()
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": route,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_ACCEPT": "application/json",
        "HTTP_ACCEPT_ENCODING": "gzip, br",
        "CONTENT_LENGTH": str(len(data)),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(data),
        "wsgi.errors": sys.stderr,
    }
    if data:
        environ["CONTENT_TYPE"] = "application/json"
    if token != "-":
        environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return name, environ


def profile_shares(stats: pstats.Stats, *, top: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """cProfile's self time as shares: by area of the code, and the ``top`` functions."""
    by_area: dict[str, float] = defaultdict(float)
    functions: list[tuple[float, str]] = []
    total = 0.0
    for (filename, _, function), (_, _, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        by_area[_area(filename)] += own
        total += own
        short = filename.replace(ROOT, "").split("site-packages/")[-1].split("/lib/python3.11/")[-1]
        functions.append((own, f"{function} ({short})"))
    functions.sort(reverse=True)
    total = total or 1.0
    areas = [
        {"area": area, "percent": round(100 * own / total, 1)}
        for area, own in sorted(by_area.items(), key=lambda item: -item[1])
    ]
    shares = [{"function": name, "percent": round(100 * own / total, 1)} for own, name in functions[:top]]
    return areas, shares


def _area(filename: str) -> str:
    path = "/" + filename.lstrip("/")
    for area, needles in AREAS:
        if any(needle in path for needle in needles):
            return area
    return "other (interpreter, standard library)"


def main() -> None:
    requests_file, count, out = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="vp-perf-cpu-"))
    from videoplatform.wsgi import application  # what gunicorn serves: the response cache in front

    lines = requests_file.read_text().splitlines()[: count + WARM_UP]

    def call(line: str) -> str:
        name, environ = _environ(line)
        b"".join(application(environ, lambda status, headers, exc_info=None: None))
        return name

    for line in lines[:WARM_UP]:
        call(line)
    # First the CPU per request, unprofiled; then the same requests again under the profiler.
    cpu: dict[str, float] = defaultdict(float)
    requests: dict[str, int] = defaultdict(int)
    for line in lines[WARM_UP:]:
        started = time.thread_time()
        name = call(line)
        cpu[name] += time.thread_time() - started
        requests[name] += 1
    profiler = cProfile.Profile(time.thread_time)
    profiler.enable()
    for line in lines[WARM_UP:]:
        call(line)
    profiler.disable()
    areas, functions = profile_shares(pstats.Stats(profiler), top=15)
    all_cpu = sum(cpu.values())
    summary = {
        "requests": sum(requests.values()),
        "cpu_ms_per_request": 1000 * all_cpu / max(sum(requests.values()), 1),
        "endpoints": {
            name: {
                "requests": requests[name],
                "cpu_ms": 1000 * cpu[name] / requests[name],
                "share_percent": 100 * cpu[name] / all_cpu,
            }
            for name in sorted(cpu, key=lambda n: -cpu[n])
        },
        "areas": areas,
        "self": functions,
        "note": "areas and functions: cProfile self time (its overhead inflates every call: shares only)",
    }
    out.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
