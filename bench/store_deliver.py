"""Delivery into the store on SQLite vs PostgreSQL, side by side in one run: the store's
deliver() (store/messages.py) called directly, so the figures are the backends' own (no
SMTP, no delivery stages). Alternating backends, a few runs each of:

  sequential x100          one delivery at a time, one local copy (latency)
  200 at once, 1 mailbox   concurrent deliveries into one INBOX (they take turns on
                           its row until commit on PostgreSQL: UIDs in commit order)
  200 at once, 20 boxes    concurrent deliveries spread over 20 accounts
  fan-out x20 (10 copies)  one message to 10 accounts, 20 times
  24 MiB spooled           one large message from a spool file, local copy + relay
                           (seconds, and the Python memory peak: tracemalloc)

Medians and the PostgreSQL/SQLite ratio. PostgreSQL: a private cluster (tests/pg.py)
on 127.0.0.1, fsync on, so every commit waits for its WAL flush, as SQLite's writer
waits for its sync.

    .venv/bin/python bench/store_deliver.py [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import time
import tracemalloc

from common import PASSWORD, backend_stores

from mailwright.address import parse_mailbox
from mailwright.store.messages import Delivery, LocalCopy
from mailwright.store.queue import RemoteRecipient

ACCOUNTS = 20
MiB = 1 << 20
_ids = itertools.count()


def small(accounts: list[int]) -> Delivery:
    n = next(_ids)
    return Delivery(message_id=f"B{n}", mail_from="sender@example.org",
                    local=[LocalCopy(a) for a in accounts],
                    local_content=(f"Return-Path: <sender@example.org>\r\nFrom: s@example.org"
                                   f"\r\nSubject: bench {n}\r\n\r\nhello {n}\r\n").encode())


async def setup(s) -> list[int]:
    await s.add_domain("example.test")
    ids = []
    for i in range(ACCOUNTS):
        await s.add_account(parse_mailbox(f"u{i}@example.test"), PASSWORD)
        ids.append(await s.account_id(f"u{i}@example.test"))
    return ids


def large(s) -> tuple[Delivery, int]:
    spool = s.spool()
    spool.write(b"From: s@example.org\r\nSubject: big\r\n"
                b"Content-Type: application/octet-stream\r\n\r\n")
    line = b"0123456789abcdef" * 62 + b"\r\n"
    for _ in range(24 * MiB // len(line)):
        spool.write(line)
    relay = spool.content()
    local = b"Return-Path: <s@example.org>\r\n" + relay
    return local, relay


def operations(s, ids: list[int]) -> dict:
    async def sequential():
        for _ in range(100):
            await s.deliver(small([ids[0]]))

    async def one_box():
        await asyncio.gather(*(s.deliver(small([ids[1]])) for _ in range(200)))

    async def spread():
        await asyncio.gather(*(s.deliver(small([ids[i % ACCOUNTS]])) for i in range(200)))

    async def fan_out():
        for _ in range(20):
            await s.deliver(small(ids[:10]))

    async def big():
        local, relay = large(s)
        n = next(_ids)
        await s.deliver(Delivery(message_id=f"L{n}", mail_from="s@example.org",
                                 local=[LocalCopy(ids[2])], local_content=local,
                                 remote=[RemoteRecipient("x@far.test")], relay_content=relay))
    return {"sequential x100": sequential, "200 at once, 1 mailbox": one_box,
            "200 at once, 20 boxes": spread, "fan-out x20 (10 copies)": fan_out,
            "24 MiB spooled": big}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with backend_stores("mw-bench-deliver-") as stores:
        ops = {name: operations(s, asyncio.run(setup(s))) for name, s in stores.items()}
        timings: dict = {(n, op): [] for n in stores for op in ops["sqlite"]}
        peaks: dict = {n: [] for n in stores}
        for _ in range(args.runs):
            for op in ops["sqlite"]:
                for name in stores:                      # alternating backends
                    if op == "24 MiB spooled":
                        tracemalloc.start()
                    start = time.perf_counter()
                    asyncio.run(ops[name][op]())
                    timings[name, op].append((time.perf_counter() - start) * 1000)
                    if op == "24 MiB spooled":
                        peaks[name].append(tracemalloc.get_traced_memory()[1] / MiB)
                        tracemalloc.stop()
        print(f"{'operation':26} {'SQLite ms':>10} {'PostgreSQL ms':>14} {'ratio':>7}")
        for op in ops["sqlite"]:
            lite = statistics.median(timings["sqlite", op])
            pg = statistics.median(timings["postgresql", op])
            print(f"{op:26} {lite:10.1f} {pg:14.1f} {pg / lite:7.2f}")
        print("24 MiB spooled, Python memory peak (MiB, incl. building the spool): "
              + ", ".join(f"{n} {statistics.median(p):.0f}" for n, p in peaks.items()))


if __name__ == "__main__":
    sys.exit(main())
