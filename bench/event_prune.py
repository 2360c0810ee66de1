"""SMTP accept rate while the event pruner deletes a large backlog, against the same
server not pruning.

The events table of the server's data directory is filled with 1,000,000 events 100 to
400 days old (direct SQLite, before the server starts; one filled database, copied for
each run). Then, in alternating rounds, on a fresh copy each: the server with
`retention_days = "unlimited"` (nothing to prune), and with `retention_days = 30` and
`prune_interval = 1`, whose pruner starts deleting the backlog (prune_batch rows per
writer job) as the server starts. Postfix's smtp-source sends a bounded number of 4 KB
messages over several concurrent sessions to each; prints messages/s medians, the ratio,
and how many old events the pruner deleted during the measured runs.

    .venv/bin/python bench/event_prune.py [--rounds 5] [--events 1000000] [--messages 1500]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import SMTP_SOURCE, Mailwright, fmt, smtp_source

from mailwright.events.log import EventRow
from mailwright.imap.fetch import views
from mailwright.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent
DAY = 86400.0
SIZE = 4 * 1024
KEEP = '[events]\nretention_days = "unlimited"\n'
PRUNE = "[events]\nretention_days = 30\nprune_interval = 1\n"


def filled_database(work: Path, count: int) -> tuple[Path, float]:
    """A data directory's mail.db (the server's schema) holding `count` events, and the
    time before which they all lie."""
    template = work / "template"
    SQLiteStore(template, render_views=views).close()          # the schema, indexes
    now = time.time()
    newest = now - 100 * DAY
    rng = random.Random(15)
    domains = [f"d{i}.test" for i in range(20)]
    kinds = [("delivered", "rcpt"), ("accepted", "mail_from"), ("smtp-connect", None)]

    def rows():
        for i in range(count):
            kind, field = kinds[i % len(kinds)]
            data = {"ip": "192.0.2.7", "remote": "mx.example.net [192.0.2.1]",
                    "reply": "250 2.0.0 Ok"}
            if field:
                data[field] = f"user{rng.randrange(5000)}@{rng.choice(domains)}"
            r = EventRow.of(newest - 300 * DAY * (count - i) / count, kind, f"S{i // 6}",
                            f"M{i // 3}" if field else None, data)
            yield (r.ts, r.type, r.session, r.message_id, r.address, r.domain, r.tag,
                   json.dumps(r.data))
    c = sqlite3.connect(template / "mail.db")
    c.execute("PRAGMA synchronous=OFF")           # a scratch copy: speed over durability
    c.execute("PRAGMA cache_size=-262144")
    c.execute("BEGIN")
    c.executemany("INSERT INTO events (ts, type, session, message_id, address, domain, tag, "
                  "data) VALUES (?,?,?,?,?,?,?,?)", rows())
    c.execute("COMMIT")
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")   # all of it in mail.db, to be copied
    c.close()
    return template / "mail.db", newest + 1


def old_events(server: Mailwright, before: float) -> int:
    with sqlite3.connect(server.dir / "data" / "mail.db", timeout=30) as c:
        return c.execute("SELECT count(*) FROM events WHERE ts<?", (before,)).fetchone()[0]


def stop(server: Mailwright) -> None:
    server.proc.terminate()
    server.proc.wait(60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--messages", type=int, default=1500, help="messages per measured run")
    ap.add_argument("--sessions", type=int, default=10)
    args = ap.parse_args()
    if not os.path.exists(SMTP_SOURCE):
        sys.exit("smtp-source not found: run `make test-deps` (Debian package postfix)")
    work = Path(tempfile.mkdtemp(prefix="mw-bench-", dir=ROOT / "bench"))
    try:
        start = time.perf_counter()
        database, before = filled_database(work, args.events)
        print(f"{args.events} old events written in {time.perf_counter() - start:.1f} s "
              f"({database.stat().st_size / 2**20:.0f} MB)")

        def prepare(data_dir: Path) -> None:
            data_dir.mkdir()
            shutil.copyfile(database, data_dir / "mail.db")
        rates: dict[str, list[float]] = {"no pruning": [], "pruning": []}
        deleted, rate_deleted, unfinished = 0, [], 0
        for rnd in range(args.rounds):
            order = [("no pruning", KEEP), ("pruning", PRUNE)]
            for name, extra in order if rnd % 2 == 0 else order[::-1]:
                (work / f"{rnd}-{name}").mkdir()
                server = Mailwright(work / f"{rnd}-{name}", extra=extra, prepare=prepare)
                try:
                    smtp_source(server.port, 100, SIZE, args.sessions)     # warm-up
                    old = old_events(server, before)
                    elapsed = smtp_source(server.port, args.messages, SIZE, args.sessions)
                    rates[name].append(args.messages / elapsed)
                    if name == "pruning":
                        left = old_events(server, before)
                        deleted += old - left
                        rate_deleted.append((old - left) / elapsed)
                        unfinished += left > 0
                    elif old != args.events:
                        sys.exit(f"events went without pruning: {args.events - old}")
                finally:
                    stop(server)
                    shutil.rmtree(server.dir)
        a, b = rates["no pruning"], rates["pruning"]
        print(f"\nSMTP accept with {args.events} old events, {args.sessions} concurrent "
              f"sessions, {args.messages} x {SIZE // 1024} KB per run, {args.rounds} "
              f"alternating rounds, messages/s (median [min-max])")
        print(f"  without pruning       {fmt(a)}")
        ratio = statistics.median(b) / statistics.median(a)
        print(f"  while pruning         {fmt(b)}   ratio {ratio:.2f}x")
        print(f"  pruner during the runs: {deleted} events deleted, "
              f"{statistics.median(rate_deleted):.0f} events/s (median); "
              f"backlog left at the end of {unfinished} of {args.rounds} runs"
              + ("" if unfinished == args.rounds else
                 "  <-- the pruner finished within a run: part of it measured no pruning"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
