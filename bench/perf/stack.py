"""The platform as in production, on loopback: services, the database, gunicorn servers, metrics.

Every server the harness starts is a real gunicorn with the shipped ``gunicorn.conf.py`` and
``settings.prod`` (a random ``SECRET_KEY``, ``SECURE_SSL_REDIRECT`` off for plain HTTP on
loopback), reading through PgBouncer (transaction mode) with the streaming replica and Redis.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
GUNICORN = str(Path(sys.executable).parent / "gunicorn")
CLK_TCK = os.sysconf("SC_CLK_TCK")

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass(frozen=True)
class Services:
    primary: str = "postgres://videoplatform:videoplatform@127.0.0.1:5432"
    replica: str = "postgres://videoplatform:videoplatform@127.0.0.1:5433"
    pgbouncer: str = "postgres://videoplatform:videoplatform@127.0.0.1:6432"
    redis: str = "redis://127.0.0.1:6379/13"
    broker: str = "redis://127.0.0.1:6379/14"
    s3: str = "http://127.0.0.1:9000"
    database: str = "vp_perf"

    def url(self, base: str, database: str | None = None) -> str:
        return f"{base.rstrip('/')}/{database or self.database}"


def reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=1):
            return True
    except OSError:
        return False


def ensure_services(services: Services, *, replica: bool) -> None:
    """The local services, started with scripts/services.sh when one is down."""
    wanted = [services.primary, services.pgbouncer, services.redis] + ([services.replica] if replica else [])
    if all(reachable(url) for url in wanted):
        return
    print("services: starting them (scripts/services.sh up)")
    subprocess.run(["bash", "scripts/services.sh", "up"], cwd=ROOT, check=True, timeout=600)


def ensure_wrk() -> str:
    """wrk (Debian package ``wrk``), installed with apt-get when missing and we are root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk: installing the Debian package")
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, timeout=600)
        found = shutil.which("wrk")
        if not found:
            subprocess.run(["apt-get", "update", "-qq"], check=False, timeout=600)
            subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, timeout=600)
            found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is needed: install the Debian package wrk (apt-get install wrk)")
    return found


def psql(url: str, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True, connect_timeout=5, prepare_threshold=None) as conn:
        cursor = conn.execute(query, params)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def create_database(services: Services) -> None:
    admin = services.url(services.primary, "postgres")
    if not psql(admin, "SELECT 1 FROM pg_database WHERE datname = %s", [services.database]):
        psql(admin, f'CREATE DATABASE "{services.database}"')
        print(f"database: created {services.database}")


def wait_for_replica(services: Services, timeout: float = 60) -> None:
    target = psql(services.url(services.primary), "SELECT pg_current_wal_lsn()::text")[0][0]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(psycopg.Error):
            if psql(
                services.url(services.replica), "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target]
            )[0][0]:
                return
        time.sleep(0.2)
    raise SystemExit("the replica did not catch up with the seeded data")


def xact_counts(url: str, database: str) -> float:
    """Committed and rolled-back transactions of ``database`` so far (pg_stat_database)."""
    rows = psql(
        url, "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s", [database]
    )
    return float(rows[0][0]) if rows else 0.0


_next_port = int(os.environ.get("PERF_PORT_BASE", "0") or 0)


def free_port() -> int:
    """A free port: the next free one from ``PERF_PORT_BASE`` when set (a range of 100), else
    one the kernel picks."""
    global _next_port
    while _next_port:
        port, _next_port = _next_port, _next_port + 1
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def s3_bucket(services: Services, bucket: str) -> bool:
    """Creates the bucket on the S3-compatible server; False when there is none."""
    if not reachable(services.s3):
        return False
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=services.s3,
        region_name="us-east-1",
        aws_access_key_id="perf",
        aws_secret_access_key="perf",
    )
    with contextlib.suppress(
        client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists
    ):
        client.create_bucket(Bucket=bucket)
    return True


def production_env(
    services: Services, *, replica: bool, s3: bool, overrides: Mapping[str, str] | None = None
) -> dict[str, str]:
    """settings.prod's environment for loopback: what a pod gets, less TLS."""
    drop = {
        name for name in os.environ if name.startswith(("DATABASE_", "REDIS_", "CACHE_", "GUNICORN_", "AWS_"))
    }
    env = {key: value for key, value in os.environ.items() if key not in drop}
    env.update(
        DJANGO_SETTINGS_MODULE="settings.prod",
        SECRET_KEY=secrets.token_urlsafe(64),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SUBSCRIPTIONS_PAYMENT_GATEWAY="subscriptions.billing.ClosedPaymentGateway",
        UPLOADS_PER_DAY="1000000",  # the mix creates many videos from few accounts
        TRANSCODE_MINUTES_PER_DAY="1000000",
        SECURE_SSL_REDIRECT="false",
        DATABASE_URL=services.url(services.pgbouncer),
        DATABASE_POOLED="true",
        DATABASE_DIRECT_URL=services.url(services.primary),
        REDIS_URL=services.redis,
        CELERY_BROKER_URL=services.broker,
        LOG_LEVEL="WARNING",
        HOST="127.0.0.1",
        # The load comes from one address and a few users: keep the throttle's per-request
        # Redis INCR in the measurement, with limits the load never reaches.
        API_THROTTLE_ANON_RATE="100000000/min",
        API_THROTTLE_USER_RATE="100000000/min",
    )
    if replica:
        env["DATABASE_REPLICA_URLS"] = services.url(services.replica)
    if s3:
        env.update(
            AWS_STORAGE_BUCKET_NAME="vp-perf",
            AWS_S3_ENDPOINT_URL=services.s3,
            AWS_ACCESS_KEY_ID="perf",
            AWS_SECRET_ACCESS_KEY="perf",
        )
    env.update(overrides or {})
    return env


def manage(env: Mapping[str, str], *args: str, timeout: float = 600) -> str:
    result = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=dict(env), capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise SystemExit(f"manage.py {args[0]} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) of one process; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return (total - idle) / CLK_TCK, total / CLK_TCK


@dataclass
class Server:
    """One gunicorn (the platform, or the bare floor app) with the shipped configuration."""

    name: str
    env: dict[str, str]
    app: str | None = None  # None: the configuration's own wsgi_app (the platform)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="vp-perf-")))
    cwd: Path = ROOT

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90, ready_path: str = "/health") -> Server:
        """Starts gunicorn and returns once ``ready_path`` answers 200 (``/ready``: what the
        Deployment's readiness probe asks, with its 2 s timeout)."""
        env = dict(self.env)
        env.update(
            PORT=str(self.port),
            PROMETHEUS_MULTIPROC_DIR=str(self.workdir / "metrics"),
            GUNICORN_ACCESS_LOG=env.get("GUNICORN_ACCESS_LOG", str(self.workdir / "access.log")),
        )
        command = [GUNICORN, "-c", str(self.cwd / "gunicorn.conf.py")] + ([self.app] if self.app else [])
        log = (self.workdir / "gunicorn.log").open("wb")
        self.process = subprocess.Popen(
            command, cwd=self.cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        workers = int(env.get("GUNICORN_WORKERS", "0") or 0)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited:\n{self.log_tail()}")
            with contextlib.suppress(OSError, http.client.HTTPException, TimeoutError):
                status, _, _ = self.request("GET", ready_path, timeout=2)
                if status == 200 and (not workers or len(self.worker_pids()) >= workers):
                    return self
            time.sleep(0.3)
        self.stop()
        raise SystemExit(f"{self.name} did not answer {ready_path} in {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self) -> str:
        path = self.workdir / "gunicorn.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def worker_pids(self) -> list[int]:
        return children(self.process.pid) if self.process else []

    def cpu_seconds(self) -> float:
        if not self.process:
            return 0.0
        return process_cpu(self.process.pid) + sum(process_cpu(pid) for pid in self.worker_pids())

    def get(
        self, path: str, headers: Mapping[str, str] | None = None
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        return self.request("GET", path, headers=headers)

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        timeout: float = 30,
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            all_headers = {"Accept": "application/json", **(headers or {})}
            if payload is not None:
                all_headers["Content-Type"] = "application/json"
            conn.request(method, path, body=payload, headers=all_headers)
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()

    def scrape(self) -> Samples:
        _, _, text = self.get("/metrics")
        samples: Samples = {}
        for family in text_string_to_metric_families(text.decode()):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


def delta(after: Samples, before: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Per label set, how much the counter ``name`` grew between two scrapes."""
    return {
        labels: value - before.get((metric, labels), 0.0)
        for (metric, labels), value in after.items()
        if metric == name and value - before.get((metric, labels), 0.0) > 0
    }
