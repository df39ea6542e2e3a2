"""A small mixed load for the API: threads with httpx clients, bounded in time, loopback only.

Each thread loops over a weighted mix of operations (public reads, authenticated reads, video
creation) until the run's deadline, recording every request: when it was sent, how long it took,
its status (0 for a transport error or a timeout) and whether the answer was the one expected.
A write answered 201 is *acknowledged*: its id is kept so that a caller can check afterwards that
every acknowledged write is in the database.

    from bench.loadgen import LoadGenerator, seed_users
    users = seed_users(base_url, count=4)
    load = LoadGenerator(base_url, users=users, threads=6)
    load.start(); ...; load.stop()
    print(load.report().table())

Used by the fault scripts (bench/faults), the soak run (bench/soak.py) and tests/reliability.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import random
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

DEFAULT_TIMEOUT = 5.0
# One line per request would drown every other log line of a run.
logging.getLogger("httpx").setLevel(logging.WARNING)


@dataclass(frozen=True)
class User:
    username: str
    password: str
    token: str
    id: str


@dataclass(frozen=True)
class Sample:
    """One request: ``at`` and ``latency`` in seconds from the start of the run."""

    at: float
    op: str
    kind: str  # "read" or "write"
    status: int  # 0: transport error or timeout
    latency: float
    ok: bool
    error: str = ""
    json_error: bool = True  # a failed answer carried the API's JSON error shape
    created_id: str = ""


@dataclass
class Operation:
    name: str
    kind: str
    weight: int
    call: Callable[[httpx.Client, random.Random], tuple[httpx.Response, str]]
    expected: frozenset[int] = frozenset({200})


def _json_error(response: httpx.Response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("error"), dict) and "code" in body["error"]


def register_user(client: httpx.Client, base_url: str, prefix: str = "load") -> User:
    suffix = uuid.uuid4().hex[:10]
    username = f"{prefix}_{suffix}"
    password = f"Pw-{uuid.uuid4().hex}"
    response = client.post(
        f"{base_url}/api/auth/register",
        json={"username": username, "email": f"{username}@example.com", "password": password},
    )
    response.raise_for_status()
    body = response.json()
    return User(username=username, password=password, token=body["token"], id=body["user"]["id"])


def seed_users(base_url: str, count: int = 4, prefix: str = "load") -> list[User]:
    """Registers ``count`` users through the API (each answer carries a real bearer token)."""
    with httpx.Client(timeout=30) as client:
        return [register_user(client, base_url, prefix) for _ in range(count)]


def seed_videos(base_url: str, users: Iterable[User], per_user: int = 3) -> list[str]:
    """Creates public videos (metadata only) through the API; their ids."""
    ids: list[str] = []
    with httpx.Client(timeout=30) as client:
        for user in users:
            for index in range(per_user):
                response = client.post(
                    f"{base_url}/api/videos",
                    json={"title": f"seed {user.username} {index}", "privacy": "public"},
                    headers={"Authorization": f"Bearer {user.token}"},
                )
                response.raise_for_status()
                ids.append(response.json()["id"])
    return ids


class LoadGenerator:
    """A steady mixed load from ``threads`` threads, each with its own connection pool."""

    def __init__(
        self,
        base_url: str,
        *,
        users: list[User],
        video_ids: list[str] | None = None,
        threads: int = 6,
        write_share: float = 0.1,
        pause: float = 0.0,
        timeout: float = DEFAULT_TIMEOUT,
        seed: int = 1,
    ) -> None:
        if not users:
            raise ValueError("the load needs at least one user")
        self.base_url = base_url.rstrip("/")
        self.users = users
        self.video_ids = list(video_ids or [])
        self.threads = threads
        self.pause = pause
        self.timeout = timeout
        self.seed = seed
        self.samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self.started_at = 0.0
        self.operations = self._operations(write_share)
        self._user_cycle = itertools.cycle(users)

    # --- the mix -----------------------------------------------------------------------------

    def _auth(self, user: User) -> dict[str, str]:
        return {"Authorization": f"Bearer {user.token}"}

    def _next_user(self) -> User:
        with self._lock:
            return next(self._user_cycle)

    def _operations(self, write_share: float) -> list[Operation]:
        base = self.base_url
        reads = 1000 - int(write_share * 1000)

        def feed(client: httpx.Client, rng: random.Random) -> tuple[httpx.Response, str]:
            return client.get(f"{base}/api/videos", params={"limit": 10}), ""

        def video(client: httpx.Client, rng: random.Random) -> tuple[httpx.Response, str]:
            if not self.video_ids:
                return feed(client, rng)
            return client.get(f"{base}/api/videos/{rng.choice(self.video_ids)}"), ""

        def plans(client: httpx.Client, rng: random.Random) -> tuple[httpx.Response, str]:
            return client.get(f"{base}/api/subscriptions/plans"), ""

        def me(client: httpx.Client, rng: random.Random) -> tuple[httpx.Response, str]:
            return client.get(f"{base}/api/auth/me", headers=self._auth(self._next_user())), ""

        def create(client: httpx.Client, rng: random.Random) -> tuple[httpx.Response, str]:
            title = f"load {uuid.uuid4().hex[:12]}"
            response = client.post(
                f"{base}/api/videos",
                json={"title": title, "privacy": "public", "tags": ["load"]},
                headers=self._auth(self._next_user()),
            )
            created = ""
            if response.status_code == 201:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    created = str(response.json()["id"])
            return response, created

        return [
            Operation("GET /api/videos", "read", reads * 3 // 10, feed),
            Operation("GET /api/videos/{id}", "read", reads * 4 // 10, video),
            Operation("GET /api/subscriptions/plans", "read", reads * 1 // 10, plans),
            Operation("GET /api/auth/me", "read", reads * 2 // 10, me),
            Operation("POST /api/videos", "write", 1000 - reads, create, frozenset({201})),
        ]

    # --- running -----------------------------------------------------------------------------

    def _loop(self, index: int, deadline: float) -> None:
        rng = random.Random(self.seed * 1000 + index)
        ops = [op for op in self.operations if op.weight > 0]
        weights = [op.weight for op in ops]
        limits = httpx.Limits(max_connections=2, max_keepalive_connections=2)
        with httpx.Client(timeout=self.timeout, limits=limits) as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                op = rng.choices(ops, weights)[0]
                sent = time.monotonic()
                try:
                    response, created = op.call(client, rng)
                    status = response.status_code
                    ok = status in op.expected
                    sample = Sample(
                        at=sent - self.started_at,
                        op=op.name,
                        kind=op.kind,
                        status=status,
                        latency=time.monotonic() - sent,
                        ok=ok,
                        error="" if ok else response.text[:200],
                        json_error=ok or _json_error(response),
                        created_id=created,
                    )
                except httpx.HTTPError as exc:
                    sample = Sample(
                        at=sent - self.started_at,
                        op=op.name,
                        kind=op.kind,
                        status=0,
                        latency=time.monotonic() - sent,
                        ok=False,
                        error=f"{type(exc).__name__}: {exc}"[:200],
                        json_error=False,
                    )
                with self._lock:
                    self.samples.append(sample)
                if self.pause:
                    time.sleep(self.pause)

    def start(self, duration: float = 3600.0) -> None:
        """Starts the threads; they stop at ``stop()`` or after ``duration`` seconds at most."""
        self.started_at = time.monotonic()
        deadline = self.started_at + duration
        self._stop.clear()
        self._workers = [
            threading.Thread(target=self._loop, args=(index, deadline), daemon=True, name=f"load-{index}")
            for index in range(self.threads)
        ]
        for worker in self._workers:
            worker.start()

    def stop(self) -> Report:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=self.timeout + 5)
        return self.report()

    def run(self, duration: float) -> Report:
        self.start(duration)
        time.sleep(duration)
        return self.stop()

    def now(self) -> float:
        """Seconds since the start of the run (the clock of ``Sample.at``)."""
        return time.monotonic() - self.started_at

    def report(self) -> Report:
        with self._lock:
            return Report(list(self.samples))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[max(0, min(98, round(q) - 1))]


@dataclass
class Report:
    samples: list[Sample] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return len(self.samples)

    @property
    def failures(self) -> list[Sample]:
        return [s for s in self.samples if not s.ok]

    @property
    def failed(self) -> int:
        return len(self.failures)

    def between(self, start: float, end: float) -> Report:
        return Report([s for s in self.samples if start <= s.at < end])

    def of_kind(self, kind: str) -> Report:
        return Report([s for s in self.samples if s.kind == kind])

    @property
    def acknowledged_writes(self) -> list[str]:
        return [s.created_id for s in self.samples if s.created_id]

    @property
    def error_window(self) -> tuple[float, float] | None:
        """(first, last) failure, in seconds from the start of the run, or None."""
        failures = self.failures
        if not failures:
            return None
        return min(s.at for s in failures), max(s.at + s.latency for s in failures)

    @property
    def unclean_failures(self) -> list[Sample]:
        """Failed answers that were not the API's JSON error (an HTML page, a traceback, no answer)."""
        return [s for s in self.failures if s.status and not s.json_error]

    def statuses(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for sample in self.samples:
            counts[sample.status] = counts.get(sample.status, 0) + 1
        return dict(sorted(counts.items()))

    def latency(self, q: float) -> float:
        return percentile(sorted(s.latency for s in self.samples), q)

    @property
    def max_latency(self) -> float:
        return max((s.latency for s in self.samples), default=0.0)

    def summary(self) -> dict[str, Any]:
        window = self.error_window
        return {
            "sent": self.sent,
            "failed": self.failed,
            "failed_reads": self.of_kind("read").failed,
            "failed_writes": self.of_kind("write").failed,
            "error_window_s": None if window is None else round(window[1] - window[0], 2),
            "error_window": None if window is None else (round(window[0], 2), round(window[1], 2)),
            "statuses": self.statuses(),
            "acknowledged_writes": len(self.acknowledged_writes),
            "p50_ms": round(self.latency(50) * 1000, 1),
            "p95_ms": round(self.latency(95) * 1000, 1),
            "p99_ms": round(self.latency(99) * 1000, 1),
            "max_ms": round(self.max_latency * 1000, 1),
        }

    def table(self, title: str = "load") -> str:
        s = self.summary()
        window = "none" if s["error_window"] is None else f"{s['error_window_s']} s {s['error_window']}"
        lines = [
            f"{title}",
            f"  requests sent       {s['sent']}",
            f"  failed              {s['failed']} (reads {s['failed_reads']}, writes {s['failed_writes']})",
            f"  error window        {window}",
            f"  statuses            {s['statuses']}",
            f"  acknowledged writes {s['acknowledged_writes']}",
            f"  latency ms          p50 {s['p50_ms']}  p95 {s['p95_ms']}  p99 {s['p99_ms']}"
            f"  max {s['max_ms']}",
        ]
        return "\n".join(lines)
