"""The event log on both store backends, side by side: SQLite (one node) and PostgreSQL
(several nodes; a private cluster from tests/pg.py on 127.0.0.1, fsync on).

First `--events` rows go in through record_event, as the event log writes them (spread
over the last 30 days, the mix of a busy server, 20 domains): the time each call takes
the caller (it must never wait for the database) and the rows stored per second until
the last is committed. PostgreSQL's table is then vacuumed, as autovacuum does after
many inserts (without it every count reads the table too). Then, `--rounds` times each,
through the store and the admin layer over the filled store: the dashboard's 24-hour
and 30-day traffic (all and one domain's), the top rejection reasons of the last day,
one page of an event search by domain, and a webhook outbox's claim-and-answer cycle
(webhook_pending + webhook_outcome per delivery). Medians, and PostgreSQL's figure as a
multiple of SQLite's.

    .venv/bin/python bench/event_backends.py [--events 200000] [--rounds 9]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import free_port  # (it puts the repository on sys.path, for tests/)

from mailwright.admin import Admin
from mailwright.config import parse
from mailwright.events.log import EventRow
from mailwright.imap.fetch import views
from mailwright.store.events import EventQuery
from mailwright.store.postgresql import PostgresStore
from mailwright.store.sqlite import SQLiteStore
from mailwright.store.webhooks import DELIVERED, WebhookOutcome
from tests.pg import PostgresCluster  # the private PostgreSQL cluster of the tests

DAY = 86400.0
DOMAINS = [f"d{i}.test" for i in range(20)]
CONFIG = ('hostname = "mx.example.test"\ndata_dir = "{d}"\n[[listeners]]\nrole = "mx"\n'
          'port = 2525\n')


def rows(n: int, now: float) -> list[EventRow]:
    rng = random.Random(1)
    out = []
    for i in range(n):
        ts = now - 30 * DAY * (n - i) / n
        domain = rng.choice(DOMAINS)
        kind = ("smtp-connect", "accepted", "delivered", "rejected", "deferred")[i % 5]
        if kind == "accepted":
            data = dict(ip="192.0.2.7", size=4096, mail_from=f"u@{domain}", rcpts=1, local=1,
                        remote=0, tls="", account="", domain=domain,
                        role=rng.choice(("mx", "submission")))
        elif kind == "rejected":
            data = dict(ip="192.0.2.7", reason=rng.choice(("spf", "relay-denied", "dmarc")),
                        rcpt=f"x@{domain}")
        elif kind in ("delivered", "deferred"):
            data = dict(rcpt=f"x{rng.randrange(900)}@{domain}", remote="mx [192.0.2.1]",
                        tls="", reply="250 ok", attempt=1)
        else:
            data = dict(ip="192.0.2.7", role="mx", tls="")
        out.append(EventRow.of(ts, kind, f"S{i}", f"M{i // 5}", data))
    return out


def fill(store, flush, events: list[EventRow]) -> tuple[float, float]:
    """record_event every row; (µs per call, rows per second until all are stored)."""
    started = time.perf_counter()
    calls = 0.0
    for row in events:
        t = time.perf_counter()
        store.record_event(row)
        calls += time.perf_counter() - t
    flush()
    return calls / len(events) * 1e6, len(events) / (time.perf_counter() - started)


def median_ms(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def measure(name: str, store, flush, args, now: float) -> dict[str, float]:
    admin = Admin(store, parse(CONFIG.format(d=store.data_dir)), clock=lambda: now)
    per_call, rate = fill(store, flush, rows(args.events, now))
    figures = {"record_event, µs per call": per_call, "rows stored per second": rate}
    if isinstance(store, PostgresStore):
        # What autovacuum does after many inserts: statistics, and the visibility map
        # that lets the counts read events_traffic alone (no heap fetch per row).
        asyncio.run(store.db.statement("VACUUM (ANALYZE) events"))
    run = asyncio.run
    figures["traffic 24h, ms"] = median_ms(lambda: run(admin.stats.traffic("24h")), args.rounds)
    figures["traffic 30d, ms"] = median_ms(lambda: run(admin.stats.traffic("30d")), args.rounds)
    figures["traffic 30d of a domain, ms"] = median_ms(
        lambda: run(admin.stats.traffic("30d", "d3.test")), args.rounds)
    figures["top rejections 24h, ms"] = median_ms(lambda: run(store.top_values(
        "rejected", "reason", now - DAY, now)), args.rounds)
    figures["search page by domain, ms"] = median_ms(lambda: run(store.search_events(
        EventQuery(domain="d7.test", limit=100))), args.rounds)
    # The outbox: one endpoint for every delivered event of the last day.
    endpoint = run(store.add_webhook("http://127.0.0.1:9/", None, ("delivered",), "s", now))
    for row in rows(args.rounds * 100, now):
        store.record_event(EventRow.of(now, "delivered", None, row.message_id, row.data))
    flush()

    def cycle():
        async def go():
            for item in await store.webhook_pending(endpoint.id, 100):
                await store.webhook_outcome(WebhookOutcome(
                    item.delivery.id, endpoint.id, DELIVERED, now, status=204))
        run(go())
    figures["webhook batch of 100 claimed and answered, ms"] = median_ms(cycle, args.rounds)
    print(f"{name}: done", file=sys.stderr)
    return figures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--rounds", type=int, default=9)
    args = p.parse_args()
    now = float(int(time.time()) // 3600 * 3600 + 1800)
    cluster = PostgresCluster(free_port()).start()
    try:
        with tempfile.TemporaryDirectory(prefix="mw-bench-events-") as work:
            sqlite = SQLiteStore(Path(work) / "sqlite", views)
            try:
                a = measure("sqlite", sqlite, lambda: sqlite._writer.submit(
                    lambda c: None).result(), args, now)
            finally:
                sqlite.close()
            pg = PostgresStore(cluster.create_database(template=cluster.migrated_template()),
                               Path(work) / "pg", views)
            try:
                b = measure("postgresql", pg, pg.flush_events, args, now)
            finally:
                pg.close()
    finally:
        cluster.stop()
    print(f"{args.events:,} events, medians of {args.rounds}")
    print(f"{'':48} {'SQLite':>10} {'PostgreSQL':>11} {'PG/SQLite':>10}")
    for key in a:
        print(f"{key:48} {a[key]:10.1f} {b[key]:11.1f} {b[key] / a[key]:9.2f}x")


if __name__ == "__main__":
    main()
