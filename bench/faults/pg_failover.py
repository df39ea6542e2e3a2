"""Primary failover under a steady mixed load: the primary is SIGKILLed, the standby promoted,
the old primary fenced (rewound into a standby of the new one), and the app follows the new
primary without a restart.

    python -m bench.faults.pg_failover [--modes sync,sync+lag,async+lag] [--lag 1] [--before 5]
        [--after 8] [--threads 6] [--promote-after 0] [--template-url postgres://…/a_migrated_db]
        [--ports 5510,5511] [--app-port 18100] [--pgbouncer-port 18103]

Each mode builds a throwaway primary + standby pair (``PgPair``: initdb, pg_basebackup,
streaming), synchronous (``sync``) or not (``async``), and a gunicorn of the app whose
``DATABASE_URL`` lists both servers with ``target_session_attrs=read-write`` (and
``DATABASE_REPLICA_URLS`` both with ``target_session_attrs=standby``); ``+pgbouncer`` puts a
PgBouncer in front instead, re-pointed at the failover. It runs the load of bench/loadgen.py plus
a burst of commits straight at the primary, kills the primary's postmaster and every backend with
SIGKILL, promotes the standby, rewinds the old primary with ``pg_rewind`` and starts it as a
standby of the new one. ``+lag`` stops the primary's WAL sender for ``--lag`` seconds before the
kill (a network stall): what asynchronous replication then loses. It prints a table: requests,
failed requests, the error window, the failover's timings, acknowledged writes and how many are
missing from the new primary, whether the old primary is read-only, the slowest request; and
exits 1 if a synchronous mode lost an acknowledged write or an old primary took writes.

``PgPair`` is the fault injector other fault runs import (the chaos soak): its names and
signatures are kept stable. docs/reliability.md, "Primary failover", has the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg

from bench.faults.run import metric_sum
from bench.faults.stack import Gunicorn, PgBouncer, quietly
from bench.loadgen import LoadGenerator, Report, seed_users, seed_videos
from tests.support.processes import PG_BIN, ROOT, base_env, free_port, http_get, wait_until

DATABASE = "videoplatform"
# Settings of both nodes (appended to postgresql.conf). wal_log_hints lets pg_rewind rewind a
# diverged old primary; failover.conf holds what depends on the node's role.
NODE_CONF = """
# --- failover lab ---
listen_addresses = '127.0.0.1'
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = '512MB'
wal_log_hints = on
hot_standby = on
hot_standby_feedback = on
wal_receiver_status_interval = 1s
# The fault is a process kill, not a power cut: the page cache survives, so fsync is not needed
# for the writes to be there, and the shared machine is spared the disk flushes.
fsync = off
max_connections = 100
shared_buffers = '32MB'
recovery_target_timeline = 'latest'
include_if_exists = 'failover.conf'
"""


class CommandFailed(RuntimeError):
    pass


def _as_postgres(command: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["runuser", "-u", "postgres", "--", *command], capture_output=True, text=True, timeout=timeout
    )
    if done.returncode:
        raise CommandFailed(
            f"{pathlib.Path(command[0]).name} exited {done.returncode}: {done.stderr[-2000:]}"
        )
    return done


def _connect(port: int, dbname: str = "postgres", timeout: int = 2) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host="127.0.0.1",
        port=port,
        user="postgres",
        dbname=dbname,
        autocommit=True,
        connect_timeout=timeout,
        prepare_threshold=None,
    )


def _descendants(pid: int) -> list[int]:
    """Every process under ``pid`` (one pass over /proc: the kill must not give them time)."""
    parents: dict[int, list[int]] = {}
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    queue = [pid]
    while queue:
        for child in parents.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@dataclass
class _Port:
    """What PgBouncer's set-up reads of the server it fronts."""

    port: int


class _PgBouncer(PgBouncer):
    """Ready when it listens (the database it will serve may not exist yet)."""

    def ready(self) -> bool:
        socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        return True


def _exists(pid: int) -> bool:
    return pathlib.Path(f"/proc/{pid}").exists()


@dataclass
class Node:
    """One PostgreSQL server of the pair: its data directory, port and log."""

    name: str
    port: int
    dir: pathlib.Path
    killed: list[int] = field(default_factory=list)

    @property
    def data(self) -> pathlib.Path:
        return self.dir / "data"

    @property
    def log(self) -> pathlib.Path:
        return self.dir / "log"

    def conninfo(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname} application_name={self.name}"

    def pid(self) -> int | None:
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _alive(pid) else None

    def start(self) -> None:
        self.wait_reaped()
        options = f"-p {self.port} -k {self.dir}"
        _as_postgres(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ]
        )

    def stop(self) -> None:
        if self.pid() is None:
            return
        with contextlib.suppress(CommandFailed, subprocess.TimeoutExpired):
            _as_postgres(
                [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"], timeout=60
            )
        pid = self.pid()
        if pid is not None:  # a fast stop that did not finish: no mercy
            self.kill()

    def kill(self) -> None:
        """SIGKILL to the postmaster and every backend at once: the host is gone, nothing is flushed
        or said to anyone (no shutdown checkpoint, no last WAL sent, no goodbye to clients)."""
        pid = self.pid()
        if pid is None:
            return
        victims = [pid, *_descendants(pid)]
        for victim in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        wait_until(lambda: not any(_alive(victim) for victim in victims), timeout=10, interval=0.01)
        self.killed = victims

    def wait_reaped(self) -> None:
        """Until the killed processes are reaped too: a zombie still "exists" for the lock-file
        check of the next start (or pg_rewind's crash recovery)."""
        wait_until(lambda: not any(_exists(victim) for victim in self.killed), timeout=30, interval=0.05)
        self.killed = []

    def in_recovery(self) -> bool:
        with _connect(self.port) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        return bool(row and row[0])

    def set_failover_conf(self, text: str, *, reload: bool = False) -> None:
        path = self.data / "failover.conf"
        path.write_text(text)
        shutil.chown(path, "postgres", "postgres")
        if reload:
            with _connect(self.port) as conn:
                conn.execute("SELECT pg_reload_conf()")


class PgPair:
    """A throwaway primary + standby pair (initdb'd) for fault runs.

    The primary is ``nodes[primary_index]``; ``failover()`` swaps the roles. With
    ``synchronous=True`` the primary runs ``synchronous_standby_names = '*'`` and
    ``synchronous_commit`` (``on`` by default: a commit returns once the standby has flushed it).
    After a promotion the new primary commits alone until the old one is back as its standby
    (Patroni's ``synchronous_mode`` without ``strict``: availability first, then sync again).

    Runs as root: the servers run as ``postgres``, so ``base_dir`` is chowned to it and its parents
    must be searchable by it (``tempfile.mkdtemp()`` then ``chown``, as the benchmark does).
    ``stop()`` leaves the data; removing ``base_dir`` is the caller's. ``create_database()`` makes
    the app's database (a copy of a migrated one, or migrated).
    """

    def __init__(
        self,
        base_dir: pathlib.Path,
        ports: tuple[int, int],
        *,
        synchronous: bool = True,
        synchronous_commit: str = "on",
        pgbouncer_port: int = 0,
    ) -> None:
        self.base_dir = pathlib.Path(base_dir)
        # With a port: a PgBouncer (the repository's pgbouncer.ini) in front of the primary, which
        # failover() re-points to the new primary (scripts/pg-failover.sh repoint: edit + RELOAD).
        self.pgbouncer_port = pgbouncer_port
        self.pgbouncer: PgBouncer | None = None
        self.synchronous = synchronous
        self.synchronous_commit = synchronous_commit
        self.nodes = [
            Node(f"node{index}", port, self.base_dir / f"node{index}") for index, port in enumerate(ports)
        ]
        self.primary_index = 0
        self.failovers = 0

    # --- roles ---------------------------------------------------------------------------

    @property
    def primary(self) -> Node:
        return self.nodes[self.primary_index]

    @property
    def standby(self) -> Node:
        return self.nodes[1 - self.primary_index]

    def _primary_conf(self, *, sync: bool) -> str:
        names = "*" if sync and self.synchronous else ""
        return f"synchronous_standby_names = '{names}'\nsynchronous_commit = '{self.synchronous_commit}'\n"

    # --- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        """initdb / pg_basebackup when needed, start both, wait until the standby streams."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.base_dir, "postgres", "postgres")
        for node in self.nodes:
            node.dir.mkdir(exist_ok=True)
            shutil.chown(node.dir, "postgres", "postgres")
        primary, standby = self.primary, self.standby
        if not primary.data.exists():
            _as_postgres([str(PG_BIN / "initdb"), "-D", str(primary.data), "-A", "trust", "-U", "postgres"])
            with open(primary.data / "postgresql.conf", "a") as conf:
                conf.write(NODE_CONF)
            # Until a standby streams, the primary commits alone.
            primary.set_failover_conf(self._primary_conf(sync=False))
        if primary.pid() is None:
            primary.start()
        if not standby.data.exists():
            _as_postgres(
                [
                    str(PG_BIN / "pg_basebackup"),
                    "-d", standby.conninfo().replace(f"port={standby.port}", f"port={primary.port}"),
                    "-D", str(standby.data),
                    "-R", "-X", "stream", "-c", "fast",
                ],
                timeout=300,
            )  # fmt: skip
            standby.set_failover_conf(self._primary_conf(sync=False))
        if standby.pid() is None:
            standby.start()
        self.wait_streaming()
        if self.synchronous:
            primary.set_failover_conf(self._primary_conf(sync=True), reload=True)
            self.wait_streaming(sync=True)
        if self.pgbouncer_port and self.pgbouncer is None:
            bouncer = _PgBouncer(_Port(primary.port), {"listen_port": str(self.pgbouncer_port)})
            bouncer.port = self.pgbouncer_port
            self.pgbouncer = bouncer  # stop() ends it even if the start fails
            bouncer.start()

    def wait_streaming(self, *, sync: bool = False, timeout: float = 60) -> None:
        """Until the primary sees its standby streaming (and as its synchronous standby)."""
        sql = "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
        if sync:
            sql += " AND sync_state = 'sync'"

        def streaming() -> bool:
            with _connect(self.primary.port) as conn:
                row = conn.execute(sql).fetchone()
            return bool(row and row[0] >= 1)

        if not wait_until(lambda: quietly(streaming), timeout=timeout, interval=0.1):
            raise RuntimeError(
                f"the standby is not streaming{' synchronously' if sync else ''}:\n"
                f"{self.standby.log.read_text()[-2000:] if self.standby.log.exists() else ''}"
            )

    def database_url(self, dbname: str) -> str:
        """The URL the app uses to follow the primary: PgBouncer's when there is one (re-pointed
        at each failover), else both hosts, libpq keeping the first that takes writes."""
        if self.pgbouncer_port:
            self._bouncer_entry(dbname)
            return f"postgres://postgres@127.0.0.1:{self.pgbouncer_port}/{dbname}"
        return self.direct_url(dbname)

    def _bouncer_entry(self, dbname: str) -> None:
        """A [databases] line of its own for ``dbname``: a database PgBouncer made from the ``*``
        line keeps the host it was made with, so a re-pointed ``*`` would not move it."""
        if self.pgbouncer is None:
            return
        text = self.pgbouncer.ini.read_text()
        if f"\n{dbname} = " in text:
            return
        entry = f"{dbname} = host=127.0.0.1 port={self.primary.port} dbname={dbname}\n"
        self.pgbouncer.ini.write_text(text.replace("[databases]\n", f"[databases]\n{entry}", 1))
        self._bouncer_admin("RELOAD")

    def _bouncer_admin(self, command: str) -> None:
        assert self.pgbouncer is not None
        admin = f"host=127.0.0.1 port={self.pgbouncer.port} dbname=pgbouncer user=postgres"
        subprocess.run(
            ["psql", "-X", "-d", admin, "-c", command], check=True, capture_output=True, timeout=30
        )

    def direct_url(self, dbname: str) -> str:
        """Both servers, without the pooler: libpq connects to the one that takes writes."""
        hosts = ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)
        return f"postgres://postgres@{hosts}/{dbname}?target_session_attrs=read-write"

    def replica_url(self, dbname: str) -> str:
        """The read replicas' URL: both hosts, whichever is a standby now."""
        hosts = ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)
        return f"postgres://postgres@{hosts}/{dbname}?target_session_attrs=standby"

    def failover(
        self, *, promote_after: float = 0.0, rejoin: bool = True, standby_lag: float = 0.0
    ) -> dict[str, float]:
        """SIGKILL the current primary, promote the standby, fence/rejoin the old one.

        Returns seconds from the kill: ``promoted`` (the new primary takes writes), ``rejoined``
        (the old primary streams from the new one as a standby), ``sync_restored`` (it is the
        synchronous standby again), and ``rewind`` (pg_rewind's own time). ``promote_after``
        stands for the detection delay of whoever decides to promote (Patroni's TTL, an operator).
        ``rejoin=False`` leaves the old primary down, fenced: a ``standby.signal`` in its data
        directory, so that a restart by anyone brings it up read-only. ``standby_lag`` seconds:
        the primary's WAL sender is stopped (SIGSTOP) that long before the kill, as a network
        stall would hold it: the standby is behind by that much WAL when the primary dies.
        """
        old, new = self.primary, self.standby
        timings: dict[str, float] = {}
        sender = self._wal_sender() if standby_lag > 0 else None
        if sender is not None:
            os.kill(sender, signal.SIGSTOP)
            time.sleep(standby_lag)
        killed = time.monotonic()
        old.kill()
        timings["kill"] = time.monotonic() - killed
        # Fencing starts at once: whatever restarts the old primary's data directory now gets a
        # standby (read-only), never a second primary.
        fence = old.data / "standby.signal"
        fence.touch()
        shutil.chown(fence, "postgres", "postgres")
        if promote_after > 0:
            time.sleep(promote_after)
        _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(new.data), "-w", "-t", "60", "promote"])
        with _connect(new.port) as conn:
            # The timeline switch reaches the control file with this checkpoint: pg_rewind reads it.
            conn.execute("CHECKPOINT")
        timings["promoted"] = time.monotonic() - killed
        self.primary_index = 1 - self.primary_index
        if self.pgbouncer is not None:
            self.repoint(old.port, new.port)
            timings["repointed"] = time.monotonic() - killed
        self.failovers += 1
        if rejoin:
            self.rejoin(timings, killed)
        timings["total"] = time.monotonic() - killed
        return timings

    def repoint(self, old_port: int, new_port: int) -> None:
        """PgBouncer's [databases] moved from the old primary to the new one, and reloaded."""
        assert self.pgbouncer is not None
        admin = f"host=127.0.0.1 port={self.pgbouncer.port} dbname=pgbouncer user=postgres"
        subprocess.run(
            [
                str(ROOT / "scripts" / "pg-failover.sh"), "repoint", str(self.pgbouncer.ini),
                f"127.0.0.1:{old_port}", f"127.0.0.1:{new_port}", admin,
            ],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip

    def _wal_sender(self) -> int | None:
        with _connect(self.primary.port) as conn:
            row = conn.execute("SELECT pid FROM pg_stat_replication").fetchone()
        return int(row[0]) if row and row[0] else None

    def rejoin(self, timings: dict[str, float] | None = None, since: float | None = None) -> None:
        """The old primary (down) rewound onto the new primary's timeline, started as its standby."""
        timings = {} if timings is None else timings
        since = time.monotonic() if since is None else since
        old, new = self.standby, self.primary
        old.stop()  # restarted meanwhile (fenced: as a standby): stopped cleanly first
        old.wait_reaped()
        started = time.monotonic()
        # The fence comes off only for pg_rewind's own single-user crash recovery (which refuses
        # standby mode); --write-recovery-conf puts it back before the node starts.
        (old.data / "standby.signal").unlink(missing_ok=True)
        source = new.conninfo().replace(f"application_name={new.name}", f"application_name={old.name}")
        # pg_rewind runs the crash recovery of a killed target itself, then copies what diverged;
        # -R writes standby.signal and primary_conninfo (the new primary).
        _as_postgres(
            [
                str(PG_BIN / "pg_rewind"),
                "--target-pgdata", str(old.data),
                "--source-server", source,
                "--write-recovery-conf",
            ],
            timeout=300,
        )  # fmt: skip
        timings["rewind"] = time.monotonic() - started
        old.set_failover_conf(self._primary_conf(sync=False))
        old.start()
        self.wait_streaming()
        timings["rejoined"] = time.monotonic() - since
        if self.synchronous:
            new.set_failover_conf(self._primary_conf(sync=True), reload=True)
            self.wait_streaming(sync=True)
            timings["sync_restored"] = time.monotonic() - since

    def stop(self) -> None:
        """Stops every server it started; safe to call twice."""
        if self.pgbouncer is not None:
            self.pgbouncer.destroy()
            self.pgbouncer = None
        for node in self.nodes:
            node.stop()

    # --- data ---------------------------------------------------------------------------

    def create_database(self, dbname: str, template_url: str = "") -> None:
        """Creates ``dbname`` on the primary; with ``template_url``, a copy of that (migrated)
        database, else migrated by ``manage.py migrate``."""
        with _connect(self.primary.port) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
        if template_url:
            dump = subprocess.run(
                [str(PG_BIN / "pg_dump"), "--no-owner", "--no-acl", "-d", template_url],
                check=True,
                capture_output=True,
                timeout=300,
            )
            subprocess.run(
                ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.primary.conninfo(dbname)],
                input=dump.stdout,
                check=True,
                capture_output=True,
                timeout=300,
            )
        else:
            env = base_env(
                DJANGO_SETTINGS_MODULE="settings.test", DATABASE_URL=self.direct_url(dbname), REDIS_URL=""
            )
            subprocess.run(
                [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=900
            )

    def query(
        self, sql: str, params: Any = None, *, dbname: str = DATABASE, node: Node | None = None
    ) -> list[Any]:
        with _connect((node or self.primary).port, dbname) as conn:
            return list(conn.execute(sql, params).fetchall())


# --- the benchmark ------------------------------------------------------------------------------


def ports_from_env(name: str, count: int) -> list[int]:
    """Ports from a comma-separated variable (e.g. ``PG_FAILOVER_PORTS=5510,5511``), else free ones."""
    given = [int(item) for item in os.environ.get(name, "").split(",") if item.strip()]
    return given[:count] if len(given) >= count else [free_port() for _ in range(count)]


def app_env(pair: PgPair, work: pathlib.Path, dbname: str = DATABASE, **overrides: str) -> dict[str, str]:
    """A gunicorn's environment: the primary and the replica found by libpq, no Redis."""
    pooled = (
        {"DATABASE_POOLED": "1", "DATABASE_DIRECT_URL": pair.direct_url(dbname)}
        if pair.pgbouncer_port
        else {}
    )
    return base_env(
        DJANGO_SETTINGS_MODULE="settings.test",
        DATABASE_URL=pair.database_url(dbname),
        DATABASE_REPLICA_URLS=pair.replica_url(dbname),
        **pooled,
        DB_REPLICA_CHECK_INTERVAL="1",
        DB_CONNECT_TIMEOUT="2",
        VAR_DIR=str(work / "var"),
        MEDIA_ROOT=str(work / "media"),
        TMPDIR=str(work / "tmp"),
        REGISTRATION_LIMIT_IP="100000",
        UPLOADS_PER_DAY="1000000",
        TRANSCODE_MINUTES_PER_DAY="1000000",
        LOG_LEVEL="WARNING",
        **overrides,
    )


@contextlib.contextmanager
def app_server(env: dict[str, str], port: int | None = None, workers: int = 2) -> Iterator[Gunicorn]:
    server = Gunicorn(env, workers=workers)
    if port:
        server.port = port
        server.env["PORT"] = str(port)
        server.url = f"http://127.0.0.1:{port}"
    for folder in ("var", "media", "tmp"):
        pathlib.Path(env["VAR_DIR"]).parent.joinpath(folder).mkdir(parents=True, exist_ok=True)
    server.start()
    try:
        yield server
    finally:
        server.destroy()


def burst(port: int, dbname: str, stop: threading.Event, *, writers: int = 4) -> list[int]:
    """Small transactions committed straight at the primary by ``writers`` connections until it
    dies (2 KiB each, so that the standby has WAL to catch up on); the ids it acknowledged."""
    with _connect(port, dbname) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS failover_burst (id bigint PRIMARY KEY, payload text)")
    acknowledged: list[int] = []
    lock = threading.Lock()
    payload = "x" * 2048

    def write(offset: int) -> None:
        index = offset
        with contextlib.suppress(psycopg.Error), _connect(port, dbname) as conn:
            while not stop.is_set():
                conn.execute("INSERT INTO failover_burst VALUES (%s, %s)", (index, payload))
                with lock:
                    acknowledged.append(index)
                index += writers

    threads = [threading.Thread(target=write, args=(offset,), daemon=True) for offset in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return acknowledged


@dataclass
class Run:
    mode: str
    report: Report
    fault_at: float
    timings: dict[str, float]
    missing: list[str]
    burst_acknowledged: int = 0
    burst_missing: int = 0
    old_primary_read_only: bool = False
    replica_reads: int = 0
    notes: dict[str, Any] = field(default_factory=dict)

    def row(self) -> list[str]:
        report = self.report
        window = report.error_window
        width = "none" if window is None else f"{window[1] - window[0]:.2f}"
        after_fault = (
            ""
            if window is None
            else f" ({window[0] - self.fault_at:+.2f} → {window[1] - self.fault_at:+.2f})"
        )
        return [
            self.mode,
            f"{report.sent:,}",
            f"{report.failed} ({report.of_kind('write').failed} w, {report.of_kind('read').failed} r)",
            width + after_fault,
            f"{self.timings.get('promoted', float('nan')):.2f}",
            f"{self.timings.get('rejoined', float('nan')):.2f}",
            f"{len(report.acknowledged_writes)} / {len(self.missing)}",
            f"{self.burst_acknowledged} / {self.burst_missing}",
            "yes" if self.old_primary_read_only else "NO",
            str(self.replica_reads),
            f"{report.max_latency:.2f}",
        ]


HEADERS = [
    "replication",
    "requests",
    "failed",
    "error window s (from kill)",
    "promoted s",
    "rejoined s",
    "app writes acked / lost",
    "burst acked / lost",
    "old primary read-only",
    "reads on replica1 after",
    "slowest request s",
]


MODES = ("sync", "sync+lag", "async+lag")
SUFFIXES = {"lag", "pgbouncer"}


def run_mode(args: argparse.Namespace, mode: str) -> Run:
    base, *suffixes = mode.split("+")
    synchronous = base == "sync"
    lag = args.lag if "lag" in suffixes else 0.0
    bouncer = args.pgbouncer_port if "pgbouncer" in suffixes else 0
    work = pathlib.Path(tempfile.mkdtemp(prefix="vp-failover-"))
    shutil.chown(work, "postgres", "postgres")
    pair = PgPair(
        work / "pg", (args.ports[0], args.ports[1]), synchronous=synchronous, pgbouncer_port=bouncer
    )
    try:
        started = time.monotonic()
        pair.start()
        pair.create_database(DATABASE, args.template_url)
        pair.wait_streaming(sync=synchronous)
        print(f"  [{mode}] pair up, database loaded: {time.monotonic() - started:.1f} s", flush=True)
        with app_server(app_env(pair, work), port=args.app_port, workers=args.workers) as server:
            users = seed_users(server.url, count=4, prefix=f"failover_{mode}")
            videos = seed_videos(server.url, users, per_user=2)
            load = LoadGenerator(
                server.url, users=users, video_ids=videos, threads=args.threads, timeout=15.0
            )
            load.start(duration=args.before + args.after + 120)
            time.sleep(args.before)
            stop_burst = threading.Event()
            box: dict[str, list[int]] = {}
            writer = threading.Thread(
                target=lambda: box.setdefault("ids", burst(pair.primary.port, DATABASE, stop_burst)),
                daemon=True,
            )
            writer.start()
            time.sleep(0.5)
            fault_at = load.now() + lag
            timings = pair.failover(promote_after=args.promote_after, standby_lag=lag)
            stop_burst.set()
            writer.join(timeout=10)
            print(
                f"  [{mode}] failover: " + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items()), flush=True
            )
            time.sleep(args.after)
            # Reads return to the standby (the old primary, rejoined): replica1's queries grow.
            before_reads = metric_sum(server.url, "db_queries_total", alias="replica1")
            for index in range(1, 21):
                http_get(f"{server.url}/api/videos?limit={index}&page=2")
            time.sleep(1)
            replica_reads = metric_sum(server.url, "db_queries_total", alias="replica1") - before_reads
            report = load.stop()
        acknowledged = report.acknowledged_writes
        found = {
            row[0] for row in pair.query("SELECT id FROM videos_video WHERE id = ANY(%s)", (acknowledged,))
        }
        missing = sorted(set(acknowledged) - found)
        burst_ids = box.get("ids", [])
        burst_found = {row[0] for row in pair.query("SELECT id FROM failover_burst")} if burst_ids else set()
        run = Run(
            mode=mode,
            report=report,
            fault_at=fault_at,
            timings=timings,
            missing=missing,
            burst_acknowledged=len(burst_ids),
            burst_missing=len(set(burst_ids) - burst_found),
        )
        # Fencing: the old primary is a standby now; a write there is refused.
        old = pair.standby
        try:
            with _connect(old.port, DATABASE) as conn:
                conn.execute("INSERT INTO failover_burst VALUES (-1)")
        except psycopg.errors.ReadOnlySqlTransaction:
            run.old_primary_read_only = True
        run.replica_reads = int(replica_reads)
        run.notes["statuses"] = report.statuses()
        run.notes["failures"] = _kinds(report)
        return run
    finally:
        pair.stop()
        shutil.rmtree(work, ignore_errors=True)


def _kinds(report: Report) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for sample in report.failures:
        label = f"{sample.status} {sample.op}: {sample.error[:70]}"
        kinds[label] = kinds.get(label, 0) + 1
    return dict(sorted(kinds.items(), key=lambda item: -item[1])[:5])


def print_table(runs: list[Run]) -> None:
    rows = [HEADERS, *[run.row() for run in runs]]
    widths = [max(len(row[index]) for row in rows) for index in range(len(HEADERS))]
    for number, row in enumerate(rows):
        print("| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) + " |")
        if number == 0:
            print("|" + "|".join("-" * (width + 2) for width in widths) + "|")
    for run in runs:
        print(f"  {run.mode}: statuses {run.notes['statuses']}")
        for label, count in run.notes["failures"].items():
            print(f"    {count:>5} x {label}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--modes",
        default=",".join(MODES),
        help="comma-separated: sync or async replication; +lag: WAL shipping stalled --lag s before the "
        "kill; "
        "+pgbouncer: the app through a PgBouncer that the failover re-points",
    )
    parser.add_argument("--lag", type=float, default=1.0, help="seconds the WAL sender is stopped (+lag)")
    parser.add_argument("--before", type=float, default=5.0, help="seconds of load before the kill")
    parser.add_argument("--after", type=float, default=8.0, help="seconds of load after the failover")
    parser.add_argument("--threads", type=int, default=6, help="load threads")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument(
        "--promote-after", type=float, default=0.0, help="seconds between the kill and the promotion"
    )
    parser.add_argument("--template-url", default="", help="a migrated database to copy instead of migrating")
    parser.add_argument(
        "--ports", default="", help="the pair's two ports (default: PG_FAILOVER_PORTS or free ones)"
    )
    parser.add_argument("--app-port", type=int, default=0, help="gunicorn's port (default: a free one)")
    parser.add_argument(
        "--pgbouncer-port", type=int, default=0, help="+pgbouncer: its port (default: a free one)"
    )
    args = parser.parse_args(argv)
    args.pgbouncer_port = args.pgbouncer_port or free_port()
    args.ports = (
        [int(port) for port in args.ports.split(",")]
        if args.ports
        else ports_from_env("PG_FAILOVER_PORTS", 2)
    )
    runs = []
    for mode in [item.strip() for item in args.modes.split(",") if item.strip()]:
        base, *suffixes = mode.split("+")
        if base not in {"sync", "async"} or not set(suffixes) <= SUFFIXES:
            parser.error(f"unknown mode {mode!r}")
        started = time.monotonic()
        runs.append(run_mode(args, mode))
        print(f"  [{mode}] wall time {time.monotonic() - started:.0f} s", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f}")
    print_table(runs)
    problems = [run for run in runs if run.mode.startswith("sync") and (run.missing or run.burst_missing)]
    problems += [run for run in runs if not run.old_primary_read_only]
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
