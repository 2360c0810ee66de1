"""The mailbox store on SQLite vs PostgreSQL, side by side in one run: what IMAP asks
of the store (store/mailboxes.py), called directly, so the figures are the backends'
own (no protocol parsing). One mailbox of N messages (by append) in each; then,
alternating backends, a few runs each of:

  search TEXT <rare word>        the trigram index (FTS5 / pg_trgm)
  search UNSEEN SUBJECT x        flags and a header column
  message_data 1:* (meta)        what FETCH 1:* (FLAGS ENVELOPE) reads
  store_flags 1:* +\\Seen/-\\Seen  two whole-mailbox flag changes
  store_flags x200 single        round trips: one message at a time
  copy 1000                      COPY of 1,000 messages into another mailbox
  mailbox_counts (cached)        STATUS of a quiet mailbox

Medians (ms) and the PostgreSQL/SQLite ratio. PostgreSQL: a private cluster
(tests/pg.py) on 127.0.0.1, fsync on; VACUUM ANALYZE after the fill, as autovacuum
does on a live database (until then the trigram indexes' new entries sit in GIN's
pending list, which the planner prices high: a freshly filled table is scanned).

    .venv/bin/python bench/store_mailboxes.py [--messages 5000] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time

import psycopg
from common import PASSWORD, backend_stores

from mailwright.address import parse_mailbox
from mailwright.store import query as q

USER = "bench@example.test"
WORDS = ("mail server queue relay inbox report meeting invoice draft review schedule "
         "budget release notes customer support ticket holiday travel contract").split()
RARE = "zanzibar"


def message(rng: random.Random, i: int) -> bytes:
    body = "\r\n".join(" ".join(rng.choices(WORDS, k=10)) for _ in range(rng.randint(3, 40)))
    if i % 500 == 7:
        body += f"\r\nmeet me in {RARE.capitalize()}"
    return (f"From: Sender {i} <s{i}@example.org>\r\nTo: {USER}\r\n"
            f"Subject: {' '.join(rng.choices(WORDS, k=4))}\r\n"
            f"Message-Id: <{i}@example.org>\r\nDate: Mon, 1 Mar 2021 10:00:00 +0000\r\n\r\n"
            f"{body}\r\n").encode()


async def fill(s, count: int) -> tuple[int, int]:
    await s.add_domain("example.test")
    await s.add_account(parse_mailbox(USER), PASSWORD)
    account = await s.account_id(USER)
    inbox = await s.mailbox(account, "INBOX")
    rng = random.Random(1)
    for i in range(count):
        await s.append(inbox.id, message(rng, i), ["\\Seen"] if i % 3 else [], 1.6e9 + i)
    target = await s.create_mailbox(account, "Copies")
    return inbox.id, target.id


def operations(s, inbox: int, target: int, count: int) -> dict:
    uids = list(range(1, count + 1))

    async def flags_twice():
        await s.store_flags(inbox, uids, "add", ["\\Seen"])
        await s.store_flags(inbox, uids, "remove", ["\\Seen"])

    async def singles():
        for uid in range(1, 201):
            await s.store_flags(inbox, [uid], "add", ["$Bench"])
        await s.store_flags(inbox, list(range(1, 201)), "remove", ["$Bench"])

    async def counts():
        for _ in range(100):
            await s.mailbox_counts(inbox)
    return {
        f"search TEXT {RARE}": lambda: s.search(inbox, q.Text(RARE)),
        "search UNSEEN SUBJECT": lambda: s.search(inbox, q.And((
            q.Flag("\\Seen", False), q.Header("subject", "budget")))),
        "message_data 1:* (meta)": lambda: s.message_data(inbox, uids, True),
        "store_flags 1:* twice": flags_twice,
        "store_flags x200 single": singles,
        "copy 1000": lambda: s.copy(inbox, uids[:1000], target, False),
        "mailbox_counts x100": counts,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with backend_stores("mw-bench-store-") as stores:
        ops, fill_s = {}, {}
        for name, s in stores.items():
            start = time.perf_counter()
            inbox, target = asyncio.run(fill(s, args.messages))
            fill_s[name] = time.perf_counter() - start
            if name == "postgresql":
                with psycopg.connect(stores["postgresql"].db.dsn, autocommit=True) as conn:
                    conn.execute("VACUUM ANALYZE")
            ops[name] = operations(s, inbox, target, args.messages)
        print(f"{args.messages} messages; append one at a time: "
              + ", ".join(f"{n} {args.messages / t:.0f}/s" for n, t in fill_s.items()))
        timings: dict = {(n, op): [] for n in stores for op in ops["sqlite"]}
        for _ in range(args.runs):
            for op in ops["sqlite"]:
                for name in stores:                      # alternating backends
                    start = time.perf_counter()
                    asyncio.run(ops[name][op]())
                    timings[name, op].append((time.perf_counter() - start) * 1000)
        print(f"{'operation':28} {'SQLite ms':>10} {'PostgreSQL ms':>14} {'ratio':>7}")
        for op in ops["sqlite"]:
            lite = statistics.median(timings["sqlite", op])
            pg = statistics.median(timings["postgresql", op])
            print(f"{op:28} {lite:10.1f} {pg:14.1f} {pg / lite:7.2f}")


if __name__ == "__main__":
    sys.exit(main())
