"""How long one password hash takes, per hasher and cost, alone and under concurrency.

    .venv/bin/python bench/argon2_cost.py [--hashes 30] [--threads 2]

Compares the tuned Argon2id of accounts.hashers (the settings' ARGON2_* values) with Django's
default Argon2 and PBKDF2. A login verifies one hash, which costs the same as making one, so
these times are what a login spends in the hasher. Argon2 (argon2-cffi) and PBKDF2 (OpenSSL)
release the GIL, so threads run truly in parallel: "2 threads" shows what two concurrent
logins on a 2-core node get. Figures for docs/accounts.md; never a CI gate.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.base")

import django

django.setup()

from django.contrib.auth.hashers import (  # noqa: E402
    Argon2PasswordHasher,
    BasePasswordHasher,
    PBKDF2PasswordHasher,
)

from accounts.hashers import TunedArgon2PasswordHasher  # noqa: E402

PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Candidate:
    name: str
    params: str
    hasher: BasePasswordHasher


def candidates() -> list[Candidate]:
    tuned = TunedArgon2PasswordHasher()
    argon2 = Argon2PasswordHasher()
    pbkdf2 = PBKDF2PasswordHasher()
    return [
        Candidate(
            "tuned argon2id",
            f"t={tuned.time_cost} m={tuned.memory_cost // 1024} MiB p={tuned.parallelism}",
            tuned,
        ),
        Candidate(
            "django argon2id",
            f"t={argon2.time_cost} m={argon2.memory_cost // 1024} MiB p={argon2.parallelism}",
            argon2,
        ),
        Candidate("django pbkdf2_sha256", f"{pbkdf2.iterations:,} iterations", pbkdf2),
    ]


def timed(hash_once: Callable[[], object]) -> float:
    started = time.perf_counter()
    hash_once()
    return (time.perf_counter() - started) * 1000


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def measure(candidate: Candidate, hashes: int, threads: int) -> dict[str, float]:
    hasher = candidate.hasher

    def hash_once() -> object:
        return hasher.encode(PASSWORD, hasher.salt())

    hash_once()  # warm-up (imports, first allocation)
    alone = [timed(hash_once) for _ in range(hashes)]

    lock = threading.Lock()
    together: list[float] = []

    def worker(count: int) -> None:
        mine = [timed(hash_once) for _ in range(count)]
        with lock:
            together.extend(mine)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for future in [pool.submit(worker, hashes) for _ in range(threads)]:
            future.result()
    elapsed = time.perf_counter() - started
    return {
        "mean": statistics.fmean(alone),
        "p50": percentile(alone, 0.50),
        "p95": percentile(alone, 0.95),
        "conc_p50": percentile(together, 0.50),
        "conc_p95": percentile(together, 0.95),
        "throughput": len(together) / elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hashes", type=int, default=30, help="hashes per measurement (default 30)")
    parser.add_argument("--threads", type=int, default=2, help="concurrent hashing threads (default 2)")
    args = parser.parse_args()

    print(
        f"# {platform.python_implementation()} {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; {args.hashes} hashes each; "
        f"concurrency: {args.threads} threads"
    )
    header = (
        f"| {'hasher':<20} | {'params':<22} | {'mean ms':>7} | {'P50 ms':>6} | {'P95 ms':>6} "
        f"| {f'P50 ms ({args.threads} thr)':>15} | {f'P95 ms ({args.threads} thr)':>15} "
        f"| {f'hashes/s ({args.threads} thr)':>17} |"
    )
    print(header)
    print("|" + "|".join("-" * len(cell) for cell in header.strip("|").split("|")) + "|")
    for candidate in candidates():
        r = measure(candidate, args.hashes, args.threads)
        print(
            f"| {candidate.name:<20} | {candidate.params:<22} | {r['mean']:>7.1f} | {r['p50']:>6.1f} "
            f"| {r['p95']:>6.1f} | {r['conc_p50']:>15.1f} | {r['conc_p95']:>15.1f} "
            f"| {r['throughput']:>17.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
