"""Dashboard statistics (admin.stats) over a large event log, and what their index
costs the writer.

The events table of a fresh data directory (the server's schema) is filled with
1,000,000 events spread evenly over the last 30 days, in the mix a busy server
records (per message received: smtp-connect, starttls, accepted, smtp-disconnect; per
message sent: auth-ok, accepted, delivered, now and then deferred, bounced or a
rejected recipient; IMAP logins), 20 domains. Then each operation runs `--rounds`
times through admin.stats on the real store, and the median is printed: the 24-hour
and 30-day traffic (all of the 1M rows are in the 30 days), both for one domain, and
the summary. Last, the writer's cost of the events_traffic index: batches of events
committed as the store's writer commits them, with and without the index.

    .venv/bin/python bench/event_stats.py [--events 1000000] [--rounds 9]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from mailwright.admin import Admin
from mailwright.config import parse
from mailwright.events.log import EventRow
from mailwright.imap.fetch import views
from mailwright.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent
DAY = 86400.0
DOMAINS = [f"d{i}.test" for i in range(20)]
INSERT = ("INSERT INTO events (ts, type, session, message_id, address, domain, tag, data, "
          "role) VALUES (?,?,?,?,?,?,?,?,?)")
# One "story" per step of the cycle; about a third of the rows are counted by stats.
MIX = ["smtp-connect", "starttls", "accepted-mx", "smtp-disconnect", "auth-ok",
       "accepted-submission", "delivered", "imap-connect", "delivered", "deferred",
       "smtp-connect", "rejected", "bounced", "starttls", "smtp-disconnect"]
REASONS = ["unknown-user", "relay-denied", "spf", "dmarc", "too-big", "over-quota"]


def event(rng: random.Random, ts: float, i: int) -> tuple:
    kind = MIX[i % len(MIX)]
    domain = rng.choice(DOMAINS)
    user = f"u{rng.randrange(2000)}@{domain}"
    data: dict = {"ip": "192.0.2.7"}
    if kind.startswith("accepted"):
        role = kind.partition("-")[2]
        kind = "accepted"
        data.update(size=4096, mail_from=user, rcpts=1, local=1, remote=0, tls="",
                    account=user if role == "submission" else "", domain=domain, role=role)
    elif kind in ("delivered", "deferred", "bounced"):
        data = {"rcpt": f"x{rng.randrange(9000)}@far{rng.randrange(50)}.test",
                "remote": "mx.far.test [192.0.2.1]", "tls": "", "reply": "250 2.0.0 Ok",
                "attempt": 1, "domain": domain}
    elif kind == "rejected":
        data.update(reason=rng.choice(REASONS), code=550, rcpt=user)
    elif kind in ("smtp-connect", "starttls"):
        data.update(role="mx", tls="")
    elif kind == "auth-ok":
        data.update(account=user, protocol="smtp")
    r = EventRow.of(ts, kind, f"S{i // 8}", f"M{i // 4}", data)
    return (r.ts, r.type, r.session, r.message_id, r.address, r.domain, r.tag,
            json.dumps(r.data), r.role)


def fill(data_dir: Path, count: int, now: float) -> None:
    SQLiteStore(data_dir, render_views=views).close()          # the schema, indexes
    rng = random.Random(16)
    c = sqlite3.connect(data_dir / "mail.db")
    c.execute("PRAGMA synchronous=OFF")           # a scratch copy: speed over durability
    c.execute("BEGIN")
    c.executemany(INSERT, (event(rng, now - 30 * DAY * (count - i) / count, i)
                           for i in range(count)))
    c.execute("COMMIT")
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    c.close()


def median_ms(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def write_cost(db: Path, with_index: bool, batches: int = 300, per_batch: int = 50) -> float:
    """Milliseconds per writer batch of `per_batch` events (one transaction each, the
    store's durability settings), on a copy of the filled database."""
    c = sqlite3.connect(db, isolation_level=None)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA synchronous=NORMAL")
    if not with_index:
        c.execute("DROP INDEX events_traffic")
    rng, now = random.Random(3), time.time()
    start = time.perf_counter()
    for b in range(batches):
        c.execute("BEGIN IMMEDIATE")
        c.executemany(INSERT, [event(rng, now + b, b * per_batch + i) for i in range(per_batch)])
        c.execute("COMMIT")
    elapsed = time.perf_counter() - start
    c.close()
    return elapsed / batches * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mw-bench-", dir=ROOT / "bench"))
    try:
        now = time.time()
        started = time.perf_counter()
        fill(work / "data", args.events, now)
        size = (work / "data" / "mail.db").stat().st_size / 2**20
        print(f"{args.events} events over 30 days written in "
              f"{time.perf_counter() - started:.1f} s ({size:.0f} MB)")
        cfg = parse(f'hostname = "mx.bench.test"\ndata_dir = "{work / "data"}"\n'
                    '[[listeners]]\nrole = "mx"\nport = 2525\n')
        store = SQLiteStore(work / "data", render_views=views)
        admin = Admin(store, cfg, clock=lambda: now)
        runs = {
            "traffic 24h": lambda: admin.stats.traffic("24h"),
            "traffic 30d": lambda: admin.stats.traffic("30d"),
            "traffic 24h, one domain": lambda: admin.stats.traffic("24h", "d3.test"),
            "traffic 30d, one domain": lambda: admin.stats.traffic("30d", "d3.test"),
            "summary": lambda: admin.stats.summary(),
        }
        t = asyncio.run(admin.stats.traffic("30d"))
        counted = sum(sum(c) for c in t.counts.values())
        print(f"30d traffic counts {counted} of the {args.events} rows "
              f"(median of {args.rounds} runs each):")
        for name, op in runs.items():
            print(f"  {name:<26} {median_ms(lambda op=op: asyncio.run(op()), args.rounds):7.1f} ms")
        store.close()
        # Alternating rounds on fresh copies: neither side gets the warmer cache.
        cost: dict[bool, list[float]] = {False: [], True: []}
        for rnd in range(3):
            for with_index in (False, True) if rnd % 2 == 0 else (True, False):
                copy = work / "write.db"
                shutil.copyfile(work / "data" / "mail.db", copy)
                cost[with_index].append(write_cost(copy, with_index))
        for with_index, ms in cost.items():
            print(f"  writer batch of 50 events, {'with' if with_index else 'without'} "
                  f"events_traffic: {statistics.median(ms):.2f} ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
