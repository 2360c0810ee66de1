"""SMTP accept throughput: Mailwright vs an fsyncing aiosmtpd and vs Postfix, side by side.

The servers run on loopback and are driven by Postfix's smtp-source (20 concurrent
sessions, connections reused), 3,000 x 4 KB, 600 x 100 KB and 2,000 x 100 KB messages
(the last a burst past the text that Mailwright lets wait for its index), runs
rotating between the servers so that machine noise hits all alike. The peers: aiosmtpd writing and
fsyncing each message in a thread (bench/aiosmtpd_fsync.py), and a private Postfix
instance that queues each message (fsynced before 250) and discards it. Prints
messages/s medians, server CPU per message (each server's process tree, /proc) and
Mailwright's ratio to each peer, then the resident memory of each server with 5,000
idle SMTP connections open. Mailwright indexes message text after the 250, once
deliveries pause or past 64 MiB waiting (store/sqlite/textindex.py): its CPU is
counted until the index has caught up, and how long that took after the last 250 is
shown. --baseline CHECKOUT runs another
checkout's Mailwright (e.g. main's worktree) in the same rotation.

    .venv/bin/python bench/smtp_accept.py [--runs 5] [--idle 5000] [--baseline ../main]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from common import (
    POSTFIX,
    SMTP_SOURCE,
    Mailwright,
    Postfix,
    cpu_times,
    fmt,
    free_port,
    raise_fd_limit,
    rotation,
    smtp_source,
    tree_cpu_seconds,
    tree_rss_mb,
    wait_port,
)

ROOT = Path(__file__).resolve().parent.parent


class AiosmtpdFsync:
    name = "aiosmtpd+fsync"

    def __init__(self, work: Path):
        self.dir = work / "aiosmtpd"
        self.dir.mkdir()
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "aiosmtpd_fsync.py"), "127.0.0.1",
             str(self.port), str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=open(work / "aiosmtpd.log", "wb"))
        wait_port(self.port, self.proc)

    def stored(self) -> int:
        return len(os.listdir(self.dir))


def pid_of(server) -> int:
    return server.pid if isinstance(server, Postfix) else server.proc.pid


def stop(server) -> None:
    if isinstance(server, Postfix):
        server.stop()
    else:
        server.proc.terminate()
        server.proc.wait(30)


@dataclass
class AcceptRun:
    rate: float                 # messages/s while smtp-source sent
    cpu: float                  # the server's CPU µs per message, index included
    caught_up: float            # seconds the text index took after the last 250
    busy: float                 # % of the machine's CPUs busy while smtp-source sent


def accept_run(server, count: int, size: int, sessions: int) -> AcceptRun:
    """One timed smtp-source run against a server."""
    used, ticks = tree_cpu_seconds(pid_of(server)), cpu_times()
    elapsed = smtp_source(server.port, count, size, sessions)
    after = cpu_times()
    # Mailwright indexes text after the 250 (textindex.py): its CPU counts up to
    # when the index has caught up.
    caught_up = server.settle() if isinstance(server, Mailwright) else 0.0
    used = tree_cpu_seconds(pid_of(server)) - used
    return AcceptRun(count / elapsed, used * 1e6 / count, caught_up,
                     100 * (after[0] - ticks[0]) / max(after[2] - ticks[2], 1))


def idle_connections(server, count: int) -> tuple[float, float, int]:
    """(RSS before, RSS with `count` idle sessions that have read their greeting, opened)."""
    before = tree_rss_mb(pid_of(server))
    socks = []
    try:
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", server.port), 10)
            socks.append(s)
        opened = 0
        for s in socks:
            s.settimeout(10)
            if s.recv(512).startswith(b"220"):
                opened += 1
        time.sleep(1)
        return before, tree_rss_mb(pid_of(server)), opened
    finally:
        for s in socks:
            s.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--idle", type=int, default=5000)
    ap.add_argument("--workers", type=int, default=1,
                    help="Mailwright worker processes (config `workers`)")
    ap.add_argument("--baseline", type=Path, metavar="CHECKOUT",
                    help="also run Mailwright from another checkout (e.g. main's "
                         "worktree), in the same rotation")
    args = ap.parse_args()
    for tool in (SMTP_SOURCE, POSTFIX):
        if not os.path.exists(tool):
            sys.exit(f"{tool} not found: run `make test-deps` (Debian package postfix)")
    raise_fd_limit()
    work = Path(tempfile.mkdtemp(prefix="mw-bench-", dir=ROOT / "bench"))
    servers = []
    # A burst of 600 x 100 KB leaves ~58 MiB of text to index, under Mailwright's
    # bound of 64 MiB waiting (store/sqlite/textindex.py); 2,000 go past it, and the
    # index keeps pace from there on.
    cases = [(4 * 1024, 3000), (100 * 1024, 600), (100 * 1024, 2000)]
    results: dict[tuple[str, int, int], list[float]] = {}
    cpu: dict[tuple[str, int, int], list[float]] = {}
    lag: dict[tuple[str, int, int], list[float]] = {}
    sent = 0
    try:
        servers = [Mailwright(work, workers=args.workers), AiosmtpdFsync(work), Postfix(work)]
        if args.baseline:
            servers.append(Mailwright(work / "baseline", workers=args.workers,
                                      checkout=args.baseline))
        for size, count in cases:
            for server in servers:          # warm-up, not counted
                smtp_source(server.port, min(200, count), size, args.sessions)
            sent += min(200, count)
            for run in range(args.runs):
                for server in rotation(servers, run):
                    measured = accept_run(server, count, size, args.sessions)
                    key = (server.name, size, count)
                    results.setdefault(key, []).append(measured.rate)
                    cpu.setdefault(key, []).append(measured.cpu)
                    lag.setdefault(key, []).append(measured.caught_up)
                sent += count
        print(f"\nSMTP accept, {args.sessions} concurrent sessions, {args.runs} rotating "
              f"runs each, Mailwright with {args.workers} worker process(es); messages/s "
              f"(median [min-max]), server CPU µs per message (median)")
        for size, count in cases:
            mw = statistics.median(results[("mailwright", size, count)])
            print(f"  {size // 1024}KB x {count}")
            for server in servers:
                rates = results[(server.name, size, count)]
                ratio = "" if server.name == "mailwright" else \
                    f"  mailwright = {mw / statistics.median(rates):.2f}x"
                print(f"    {server.name:<15} {fmt(rates):>24}  "
                      f"{statistics.median(cpu[(server.name, size, count)]):7.0f} µs/msg{ratio}")
                if caught_up := statistics.median(lag[(server.name, size, count)]):
                    print(f"    {'':<15} text index caught up {caught_up:.2f} s after the "
                          f"last 250: {count / (count / statistics.median(rates) + caught_up):.0f}"
                          f" msg/s indexed")
        for server in servers:
            if isinstance(server, Postfix):
                print("postfix: queued (fsynced) each message, then discarded it")
                continue
            stored = server.stored()
            print(f"{server.name}: {stored} messages stored durably of {sent} sent"
                  + ("" if stored == sent else "  <-- MISMATCH"))
        if args.idle:
            print(f"\nResident memory with {args.idle} idle SMTP connections:")
            for server in servers:
                before, during, opened = idle_connections(server, args.idle)
                print(f"  {server.name:<16} {before:7.1f} MB idle -> {during:7.1f} MB "
                      f"with {opened} connections")
    finally:
        for server in servers:
            stop(server)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
