"""SMTP accept with `workers = 1` and `workers = 2` side by side: does a second process
help, and what stops it.

Two Mailwright servers (the same configuration but for `workers`) are driven in turn by
Postfix's smtp-source (20 concurrent sessions, connections reused) with 4 KB and 100 KB
messages, runs rotating between them. For each: messages/s (median [min-max]), the
server's CPU per message (its process tree), the load client's CPU per message, and how
busy the machine's cores were during the run (/proc/stat: user+system, and the time
they sat waiting for the disk), which tells a CPU limit from a serialised one (the
database's one writer at a time, the file system's journal commits).

    .venv/bin/python bench/scaling.py [--runs 3] [--sessions 20] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from common import (
    SMTP_SOURCE,
    Mailwright,
    cpu_seconds,
    cpu_times,
    fmt,
    raise_fd_limit,
    rotation,
    smtp_source,
    tree_cpu_seconds,
    tree_pids,
)

CASES = [(4 * 1024, 3000), (100 * 1024, 600)]


def client_cpu() -> float:
    """CPU seconds of the children this process has reaped: smtp-source runs."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(server: Mailwright, size: int, count: int, sessions: int) -> dict[str, float]:
    pids = tree_pids(server.proc.pid)           # the supervisor first, then its workers
    each = [cpu_seconds(p) for p in pids]
    server_cpu, load_cpu, machine = tree_cpu_seconds(server.proc.pid), client_cpu(), cpu_times()
    elapsed = smtp_source(server.port, count, size, sessions)
    server_cpu = tree_cpu_seconds(server.proc.pid) - server_cpu
    load_cpu = client_cpu() - load_cpu
    busy, iowait, total = (b - a for a, b in zip(machine, cpu_times(), strict=True))
    # the workers' shares of the server's CPU (a supervisor's is the first, and ~0)
    split = [(cpu_seconds(p) - c) / server_cpu for p, c in zip(pids, each, strict=True)]
    return {"rate": count / elapsed, "server_us": server_cpu * 1e6 / count,
            "server_cores": server_cpu / elapsed, "client_us": load_cpu * 1e6 / count,
            "busy": busy / total, "iowait": iowait / total,
            **{f"split{i}": share for i, share in enumerate(split)}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--workers", default="1,2", help="worker counts to compare")
    args = ap.parse_args()
    if not os.path.exists(SMTP_SOURCE):
        sys.exit(f"{SMTP_SOURCE} not found: run `make test-deps` (Debian package postfix)")
    raise_fd_limit()
    counts = [int(n) for n in args.workers.split(",")]
    work = Path(tempfile.mkdtemp(prefix="mw-bench-"))
    servers: list[Mailwright] = []
    results: dict[tuple[str, int], list[dict]] = {}
    try:
        for n in counts:
            (work / f"w{n}").mkdir()
            server = Mailwright(work / f"w{n}", workers=n)
            server.name = f"workers = {n}"
            servers.append(server)
        for size, count in CASES:
            for server in servers:                       # warm-up, not counted
                smtp_source(server.port, min(200, count), size, args.sessions)
            for r in range(args.runs):
                for server in rotation(servers, r):
                    results.setdefault((server.name, size), []).append(
                        run(server, size, count, args.sessions))
        print(f"\nSMTP accept, {args.sessions} concurrent sessions, {args.runs} rotating runs "
              f"each, {os.cpu_count()} cores; medians. server: CPU per message, cores it used "
              "(CPU time / run time) and their split over its processes (supervisor/workers); "
              "machine: share of all cores' time busy (anything running) and waiting for "
              "the disk")
        for size, _ in CASES:
            print(f"  {size // 1024}KB")
            base = None
            for server in servers:
                rows = results[(server.name, size)]
                rate = [r["rate"] for r in rows]
                base = base or statistics.median(rate)
                m = {key: statistics.median(r[key] for r in rows) for key in rows[0]}
                split = "/".join(f"{m[k]:.0%}" for k in m if k.startswith("split"))
                print(f"    {server.name:<12} {fmt(rate)} msg/s  x{m['rate'] / base:4.2f}   "
                      f"server {m['server_us']:5.0f} µs/msg, {m['server_cores']:.2f} cores "
                      f"({split})   smtp-source {m['client_us']:4.0f} µs/msg   "
                      f"machine: cores busy {m['busy']:4.0%}, iowait {m['iowait']:3.0%}")
    finally:
        for server in servers:
            server.proc.terminate()
            server.proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
