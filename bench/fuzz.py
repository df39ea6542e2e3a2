"""Schemathesis over every operation of /api/schema against a live gunicorn, at length.

    python -m bench.fuzz                          # throwaway PostgreSQL + Redis, migrated
    python -m bench.fuzz --template-url URL       # copy a migrated database instead (faster)
    python -m bench.fuzz --url http://127.0.0.1:8000   # an already running server
    python -m bench.fuzz --max-examples 300 --checks all

Two runs: anonymous, and with a real bearer token of a freshly registered user (logout is left out
of that one: it would revoke the token the run depends on; the anonymous run covers it). The same
checks as the CI test (tests/security/test_fuzz_api.py): no 5xx, documented statuses, bodies and
headers that match the schema, input that breaks the schema refused. Exits 1 on any failure;
Schemathesis prints each with a curl command that reproduces it.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.faults.stack import Gunicorn, stack
from bench.loadgen import seed_users
from tests.support.processes import VENV_BIN

CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_headers_conformance,response_schema_conformance,negative_data_rejection"
)


@contextlib.contextmanager
def server(args: argparse.Namespace) -> Iterator[str]:
    if args.url:
        yield args.url.rstrip("/")
        return
    with stack(template_url=args.template_url) as built:
        gunicorn = Gunicorn(built.app_env(LOG_LEVEL="WARNING"), workers=2)
        gunicorn.start()
        try:
            yield gunicorn.url
        finally:
            gunicorn.destroy()


def schemathesis(url: str, args: argparse.Namespace, *extra: str) -> int:
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as config:
        # Schemathesis would otherwise sign up and log in by itself: the anonymous run must stay anonymous.
        config.write("[auth]\nauto-signup = false\n")
    command = [
        str(VENV_BIN / "schemathesis"),
        "--config-file",
        config.name,
        "run",
        f"{url}/api/schema",
        "--checks",
        args.checks,
        "--max-examples",
        str(args.max_examples),
        "--phases",
        "examples,coverage,fuzzing",
        "--workers",
        str(args.workers),
        "--request-timeout",
        "30",
        "--suppress-health-check",
        "all",
        "--no-color",
        *extra,
    ]
    if args.seed is not None:
        command += ["--seed", str(args.seed)]
    try:
        return subprocess.run(command, check=False, timeout=args.timeout).returncode
    finally:
        Path(config.name).unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="", help="fuzz this running server instead of a throwaway one")
    parser.add_argument("--template-url", default="", help="a migrated database to copy instead of migrating")
    parser.add_argument(
        "--max-examples", type=int, default=100, help="examples per operation (fuzzing phase)"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--checks", default=CHECKS, help="Schemathesis checks (or 'all')")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds each of the two runs may take")
    args = parser.parse_args(argv)

    started = time.monotonic()
    with server(args) as url:
        print(f"== anonymous ({url})", flush=True)
        anonymous = schemathesis(url, args)
        token = seed_users(url, count=1, prefix="fuzz")[0].token
        print("== with a bearer token", flush=True)
        authenticated = schemathesis(
            url, args, "--header", f"Authorization: Bearer {token}", "--exclude-path", "/api/auth/logout"
        )
    elapsed = time.monotonic() - started
    print(f"== done in {elapsed:.0f} s: anonymous exit {anonymous}, authenticated exit {authenticated}")
    return 1 if anonymous or authenticated else 0


if __name__ == "__main__":
    sys.exit(main())
