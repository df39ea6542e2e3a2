"""A throwaway platform on loopback for fault runs: PostgreSQL primary and streaming standby,
PgBouncer (transaction pooling, the repository's config as template), Redis, gunicorn and an
optional Celery worker. Every server is this run's own, on free ports, so stopping one disturbs
nothing else on the machine. Used by bench/faults and tests/reliability.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from tests.support.processes import (
    PG_BIN,
    ROOT,
    VENV_BIN,
    PostgresServer,
    RedisServer,
    base_env,
    free_port,
    http_get,
    wait_until,
)

DATABASE = "videoplatform"
PGBOUNCER_TEMPLATE = ROOT / "scripts" / "services" / "pgbouncer.ini"
PGBOUNCER_BIN = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def _chown_postgres(path: Path) -> None:
    shutil.chown(path, "postgres", "postgres")


def _as_postgres(command: list[str], timeout: float = 120) -> None:
    subprocess.run(
        ["runuser", "-u", "postgres", "--", *command], check=True, capture_output=True, timeout=timeout
    )


def pg_connect(port: int, dbname: str = DATABASE, timeout: int = 3) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host="127.0.0.1",
        port=port,
        user="postgres",
        dbname=dbname,
        autocommit=True,
        connect_timeout=timeout,
        prepare_threshold=None,
    )


class Primary(PostgresServer):
    """A throwaway primary that accepts streaming replication (initdb's defaults allow it on loopback)."""

    def __init__(self) -> None:
        super().__init__()
        self.database_url = f"postgres://postgres@127.0.0.1:{self.port}/{DATABASE}"
        self.running = False

    def start(self) -> None:
        super().start()
        self.running = True

    def stop(self) -> None:
        super().stop()
        self.running = False

    def create_database(self) -> None:
        with pg_connect(self.port, "postgres") as conn:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')

    def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        with pg_connect(self.port) as conn:
            return list(conn.execute(sql, params).fetchall())


class Standby:
    """A hot standby of ``primary`` (pg_basebackup -R, streaming), on its own port."""

    def __init__(self, primary: Primary) -> None:
        self.primary = primary
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="vp-standby-"))
        _chown_postgres(self.dir)
        self.data = self.dir / "data"
        self.database_url = f"postgres://postgres@127.0.0.1:{self.port}/{DATABASE}"
        _as_postgres(
            [
                str(PG_BIN / "pg_basebackup"),
                "-h",
                "127.0.0.1",
                "-p",
                str(primary.port),
                "-U",
                "postgres",
                "-D",
                str(self.data),
                "-R",
                "-X",
                "stream",
            ],
            timeout=300,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c hot_standby=on -c fsync=off"
        _as_postgres(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.dir / "log"),
                "-o",
                options,
                "-w",
                "start",
            ]
        )

    def stop(self) -> None:
        _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def replay_lag(self) -> float | None:
        with pg_connect(self.port) as conn:
            row = conn.execute(
                "SELECT EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())"
            ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class PgBouncer:
    """A PgBouncer of this run, configured from the repository's pgbouncer.ini."""

    def __init__(self, primary: Primary, overrides: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="vp-pgbouncer-"))
        _chown_postgres(self.dir)
        self.ini = self.dir / "pgbouncer.ini"
        self.database_url = f"postgres://postgres@127.0.0.1:{self.port}/{DATABASE}"
        text = PGBOUNCER_TEMPLATE.read_text()
        text = re.sub(
            r"(?m)^\* = host=127\.0\.0\.1 port=\d+", f"* = host=127.0.0.1 port={primary.port}", text
        )
        text = re.sub(r"(?m)^listen_port = \d+", f"listen_port = {self.port}", text)
        text = re.sub(r"(?m)^unix_socket_dir = .*$", f"unix_socket_dir = {self.dir}", text)
        text = text.replace("/var/run/postgresql/videoplatform-pgbouncer", str(self.dir))
        for key, value in (overrides or {}).items():
            text, count = re.subn(rf"(?m)^{re.escape(key)} = .*$", f"{key} = {value}", text)
            if not count:
                text = text.replace("[pgbouncer]\n", f"[pgbouncer]\n{key} = {value}\n", 1)
        self.ini.write_text(text)
        userlist = self.dir / "userlist.txt"
        userlist.write_text('"postgres" ""\n"videoplatform" "videoplatform"\n')
        for path in (self.ini, userlist):
            _chown_postgres(path)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [PGBOUNCER_BIN, str(self.ini)],
            user="postgres",
            group="postgres",
            cwd=self.dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        if not wait_until(lambda: quietly(self.ready), timeout=15) or self.process.poll() is not None:
            self.stop()
            raise RuntimeError(f"pgbouncer did not start: {(self.dir / 'pgbouncer.log').read_text()[-2000:]}")

    def ready(self) -> bool:
        """Whether it serves: a connection through it to the database succeeds."""
        with pg_connect(self.port, timeout=1):
            return True

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def quietly(predicate: Any) -> bool:
    try:
        return bool(predicate())
    except (OSError, psycopg.Error):
        return False


def children(pid: int) -> list[int]:
    """The direct children of a process (gunicorn's workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                found.append(int(entry.name))
    return sorted(found)


def rss_kib(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Gunicorn:
    """gunicorn with the shipped config, whose master and workers can be seen (memory, signals)."""

    def __init__(self, env: dict[str, str], workers: int = 2, log: Path | None = None) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="vp-gunicorn-"))
        self.env = {
            "PROMETHEUS_MULTIPROC_DIR": str(self.dir / "metrics"),
            **env,
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            "GUNICORN_WORKERS": str(workers),
        }
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log or self.dir / "gunicorn.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log_file:
            self.process = subprocess.Popen(
                [str(VENV_BIN / "gunicorn"), "-c", "gunicorn.conf.py"],
                cwd=ROOT,
                env=self.env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        if not wait_until(lambda: http_get(f"{self.url}/health", timeout=1)[0] == 200, timeout=60):
            raise RuntimeError(f"gunicorn did not start:\n{self.log.read_text()[-3000:]}")

    @property
    def workers(self) -> list[int]:
        return children(self.process.pid) if self.process else []

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Stack:
    """The servers of one run; ``app_env`` is the environment of its gunicorn and workers."""

    primary: Primary
    redis: RedisServer
    standby: Standby | None = None
    pgbouncer: PgBouncer | None = None
    work: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="vp-stack-")))
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def media_root(self) -> Path:
        return self.work / "media"

    @property
    def tmp_dir(self) -> Path:
        return self.work / "tmp"

    def app_env(self, **overrides: str) -> dict[str, str]:
        env = {
            "DJANGO_SETTINGS_MODULE": "settings.test",
            "DATABASE_URL": self.pgbouncer.database_url if self.pgbouncer else self.primary.database_url,
            "DATABASE_POOLED": "1" if self.pgbouncer else "0",
            "REDIS_URL": self.redis.url,
            "CELERY_BROKER_URL": self.redis.url.rsplit("/", 1)[0] + "/1",
            "VAR_DIR": str(self.work / "var"),
            "MEDIA_ROOT": str(self.media_root),
            "TMPDIR": str(self.tmp_dir),
            "DB_CONNECT_TIMEOUT": "2",
            # The load registers a few users from one address.
            "REGISTRATION_LIMIT_IP": "100000",
            # ...and creates hundreds of videos from those few accounts: no daily upload quota.
            "UPLOADS_PER_DAY": "1000000",
            "TRANSCODE_MINUTES_PER_DAY": "1000000",
            "LOG_LEVEL": "WARNING",
            **self.extra_env,
        }
        if self.pgbouncer:
            env["DATABASE_DIRECT_URL"] = self.primary.database_url
        if self.standby:
            env["DATABASE_REPLICA_URLS"] = self.standby.database_url
            env["DB_REPLICA_CHECK_INTERVAL"] = "1"
        env.update(overrides)
        return base_env(**env)

    def copy_schema_from(self, url: str) -> None:
        """Loads a migrated database (pg_dump of ``url``) instead of running every migration."""
        dump = subprocess.run(
            [str(PG_BIN / "pg_dump"), "--no-owner", "--no-acl", "-d", url],
            check=True,
            capture_output=True,
            timeout=300,
        )
        subprocess.run(
            [
                "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.primary.port),
                "-U", "postgres", "-d", DATABASE,
            ],
            input=dump.stdout,
            check=True,
            capture_output=True,
            timeout=300,
        )  # fmt: skip

    def migrate(self) -> None:
        env = self.app_env(DATABASE_URL=self.primary.database_url, DATABASE_POOLED="0")
        env.pop("DATABASE_REPLICA_URLS", None)
        env.pop("DATABASE_DIRECT_URL", None)
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v0"],
            cwd=ROOT,
            env=env,
            check=True,
            timeout=600,
            capture_output=True,
        )

    def leftover_files(self) -> list[str]:
        """Files left in the temporary folder of the app processes (an upload or a transcode's)."""
        if not self.tmp_dir.exists():
            return []
        return sorted(str(p.relative_to(self.tmp_dir)) for p in self.tmp_dir.rglob("*") if p.is_file())

    def destroy(self) -> None:
        for server in (self.pgbouncer, self.standby):
            if server is not None:
                server.destroy()
        self.redis.stop()
        self.primary.destroy()
        shutil.rmtree(self.work, ignore_errors=True)


@contextlib.contextmanager
def stack(
    *,
    standby: bool = False,
    pgbouncer: bool = False,
    template_url: str = "",
    pgbouncer_overrides: dict[str, str] | None = None,
    **extra_env: str,
) -> Iterator[Stack]:
    """Builds and migrates a throwaway stack; everything is stopped and removed afterwards.

    ``template_url``: a migrated database to copy (seconds) instead of migrating (minutes).
    """
    primary = Primary()
    redis_server = RedisServer()
    built = Stack(primary=primary, redis=redis_server, extra_env=extra_env)
    try:
        primary.start()
        primary.create_database()
        redis_server.start()
        built.media_root.mkdir(parents=True)
        built.tmp_dir.mkdir(parents=True)
        if template_url:
            built.copy_schema_from(template_url)
        else:
            built.migrate()
        if standby:
            built.standby = Standby(primary)
            built.standby.start()
        if pgbouncer:
            built.pgbouncer = PgBouncer(primary, pgbouncer_overrides)
            built.pgbouncer.start()
        yield built
    finally:
        built.destroy()


def timed(label: str) -> Any:
    """A context manager printing how long a step took (bench output)."""

    @contextlib.contextmanager
    def block() -> Iterator[None]:
        started = time.monotonic()
        yield
        print(f"  {label}: {time.monotonic() - started:.1f} s", flush=True)

    return block()


def env_flag(name: str, default: str) -> str:
    return os.environ.get(name, default)
