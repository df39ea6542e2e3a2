"""What the cache tiers can answer of the mix, by the numbers the spec fixes: a model, no server.

    .venv/bin/python -m bench.perf.cache_model [--requests 600000] [--rate 950] [--workers 2]

The harness measures the mix on a real server; this replays the same draw (``load.Requests``:
the weights, the Zipf tail over the seeded catalogue, 70 % signed in) through a model of the
three places an answer can come from, to tell how much of the mix *could* skip Django or the
database whatever the code costs:

- **L2** (Redis, shared by every process): an entry lives its kind's TTL from its fill
  (``CACHE_TTLS``: video 300 s, user 3,600 s, ...); a read after that fills it from the database;
- **L1** (each process): least recently used out beyond ``CACHE_L1_MAX_ENTRIES`` (10,000; an
  answer served from the response cache is a use of the entries it was built from), an entry
  lives at most ``CACHE_L1_TTL`` (300 s) and never past its L2 entry's freshness;
- **the response cache** (each process): an answer is kept on a key's second ask (the first is
  not admitted), per kind of client (anonymous or token), and served while every L1 entry it was
  built from still holds what it read: its lineage (an expired entry refilled while still in its
  slot continues it: the model's data never changes), or with ``--identity`` the very entry it
  read (as before L1 lineage); ``RESPONSE_CACHE_ENTRIES`` (10,000) keys, LRU.

What each request reads, as the views read it: a detail its video and the owner's profile; a
feed page the page and the profiles of its twenty owners; a stream the video, its ladder and
the owner (and the viewer's subscription when signed in: the tokens themselves live in their own
Redis cache, not in L1); the plans their list. Requests go to the workers at random, ``--rate``
a second. It prints, per endpoint, where the data of the requests in the second half came from,
for the shipped bounds and for contrasts (no bound on L1 and the response cache: only the TTLs
limit them; a longer video TTL). It asserts nothing; docs/performance.md reads it.
"""

from __future__ import annotations

import argparse
import random
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import seed
from .load import Catalogue, Requests

TTLS = {
    "user": 3600.0,
    "video": 300.0,
    "subscription": 3600.0,
    "plan": 86400.0,
    "feed": 300.0,
    "media": 3600.0,
}
FEED_PAGE = 20

Key = tuple[str, Any]
Held = tuple[float, int, int]  # an L1 entry: expires, identity, lineage


@dataclass
class Config:
    label: str
    l1_entries: float = 10_000
    l1_ttl: float = 300.0
    answers: float = 10_000  # response cache keys per process
    touch: bool = True  # a kept answer served counts as a use of its L1 entries (LRU)
    ttls: dict[str, float] = field(default_factory=lambda: dict(TTLS))


class Process:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.l1: OrderedDict[Key, Held] = OrderedDict()
        self.answers: OrderedDict[Any, dict[str, list[tuple[Key, Held]]]] = OrderedDict()
        self.seen: OrderedDict[Any, None] = OrderedDict()


class Model:
    def __init__(self, config: Config, workers: int, lineage: bool) -> None:
        self.config = config
        self.lineage = lineage
        self.l2: dict[Key, float] = {}  # key -> fresh until
        self.processes = [Process(config) for _ in range(workers)]
        self.identity = 0

    def read(self, process: Process, key: Key, now: float) -> tuple[str, Held]:
        """Where the entry came from ('l1', 'l2', 'db') and the L1 entry now held."""
        entry = process.l1.get(key)
        if entry is not None and entry[0] > now:
            process.l1.move_to_end(key)
            return "l1", entry
        fresh = self.l2.get(key, 0.0)
        source = "l2"
        if fresh <= now:
            fresh = self.l2[key] = now + self.config.ttls[key[0]]
            source = "db"
        self.identity += 1
        lineage = entry[2] if entry is not None else self.identity  # expired, still in its slot
        entry = (min(now + self.config.l1_ttl, fresh), self.identity, lineage)
        process.l1[key] = entry
        process.l1.move_to_end(key)
        while len(process.l1) > self.config.l1_entries:
            process.l1.popitem(last=False)
        return source, entry

    def answered(self, process: Process, key: Any, client: str, now: float) -> bool:
        group = process.answers.get(key)
        if group is None or client not in group:
            return False
        if all(self.holds(process, k, entry, now) for k, entry in group[client]):
            process.answers.move_to_end(key)
            if self.config.touch:
                for k, _ in group[client]:
                    process.l1.move_to_end(k)
            return True
        del group[client]
        return False

    def holds(self, process: Process, key: Key, entry: Held, now: float) -> bool:
        current = process.l1.get(key)
        if current is None or current[0] <= now:
            return False
        return current[2] == entry[2] if self.lineage else current is entry

    def keep(self, process: Process, key: Any, client: str, reads: list[tuple[Key, Held]]) -> None:
        if key not in process.answers:
            if key not in process.seen:  # a key's first ask is not admitted
                process.seen[key] = None
                while len(process.seen) > 4 * self.config.answers:
                    process.seen.popitem(last=False)
                return
            del process.seen[key]
            process.answers[key] = {}
        process.answers[key][client] = reads
        process.answers.move_to_end(key)
        while len(process.answers) > self.config.answers:
            process.answers.popitem(last=False)


def run(
    config: Config, lines: list[str], owners: dict[str, int], newest: list[str], args: Any
) -> dict[str, Any]:
    model = Model(config, args.workers, lineage=not args.identity)
    rng = random.Random(3)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    half = len(lines) // 2
    for number, line in enumerate(lines):
        now = number / args.rate
        name, _, path, token, _ = line.split("\t")
        if name in ("login", "create"):
            continue
        process = model.processes[rng.randrange(len(model.processes))]
        client = "token" if token != "-" else "anonymous"
        parts = path.split("?")[0].split("/")
        keys: list[Key]
        shared = None
        if name == "detail":
            video = parts[3]
            keys, shared = [("video", video), ("user", owners[video])], path
        elif name == "feed":
            page = int(path.split("page=")[1]) if "page=" in path else 1
            page_videos = newest[(page - 1) * FEED_PAGE : page * FEED_PAGE]
            keys = [("feed", page)] + [("user", owners[v]) for v in page_videos]
            shared = path
        elif name == "stream":
            video = parts[3]
            keys = [("video", video), ("media", video), ("user", owners[video])]
            if token != "-":
                keys.append(("subscription", token))
        else:
            keys, shared = [("plan", "active")], path
        if shared is not None and model.answered(process, shared, client, now):
            source = "answer"
        else:
            reads = [(key, *model.read(process, key, now)) for key in keys]
            sources = {where for _, where, _ in reads}
            source = "db" if "db" in sources else "l2" if "l2" in sources else "l1"
            if shared is not None:
                model.keep(process, shared, client, [(key, entry) for key, _, entry in reads])
        if number >= half:
            counts[name][source] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.perf.cache_model")
    parser.add_argument(
        "--requests", type=int, default=600_000, help="requests replayed (the second half counted)"
    )
    parser.add_argument("--rate", type=float, default=950.0, help="requests per second of the whole server")
    parser.add_argument(
        "--workers", type=int, default=2, help="processes (each with its L1 and response cache)"
    )
    parser.add_argument("--identity", action="store_true", help="answers held by entry identity (no lineage)")
    args = parser.parse_args()

    spec = seed.SeedSpec()
    catalogue = Catalogue.from_spec(spec)
    videos = seed.plan_videos(spec, datetime.now(UTC))
    owners = {seed.video_id(v.n): v.owner for v in videos}
    newest = catalogue.visible  # the feed: newest first, public and not adult
    lines = Requests(catalogue, seed_value=11).mix(args.requests)
    minutes = args.requests / args.rate / 60
    print(
        f"{args.requests:,} requests of the mix at {args.rate:,.0f} req/s ({minutes:.1f} min),"
        f" {args.workers} processes"
    )
    configs = [
        Config("shipped bounds (L1 10,000, answers 10,000; the spec's TTLs)"),
        Config("as before: a kept answer served does not count as a use of its L1 entries", touch=False),
        Config("no bound on L1 or answers (the TTLs alone)", l1_entries=float("inf"), answers=float("inf")),
        Config("shipped bounds, video TTL 3,600 s", ttls=dict(TTLS, video=3600.0)),
    ]
    print("| model | endpoint | kept answer | L1 | L2 | database |")
    print("|---|---|---|---|---|---|")
    for config in configs:
        counts = run(config, lines, owners, newest, args)
        for name in ("detail", "feed", "stream", "plans"):
            row = counts[name]
            total = sum(row.values()) or 1
            cells = " | ".join(f"{100 * row[where] / total:.1f} %" for where in ("answer", "l1", "l2", "db"))
            print(f"| {config.label} | {name} | {cells} |")


if __name__ == "__main__":
    main()
