"""How far SMTP accept can go here: Mailwright as it is, beside the same server with
one part of its work taken away (bench/ceiling_server.py), the fsyncing aiosmtpd and
Postfix, side by side.

A part's row is an upper bound: what making that part free would give, all else
equal. "no-fsync" commits and writes blob files without syncing them;
"no-store-writes" acknowledges deliveries without writing them anywhere (SMTP, the
checks and the parse still run). If even that row is short of a goal, no work on the
store can reach the goal; the rest of the path has to get cheaper.

Driven as bench/smtp_accept.py drives it (smtp-source, 20 sessions, rotating runs);
also prints how busy the machine's CPUs were during each run (/proc/stat), because
a server that leaves them idle is waiting on itself, not on the CPUs.

    .venv/bin/python bench/accept_ceiling.py [--runs 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from ceiling_server import MODES
from common import (
    POSTFIX,
    SMTP_SOURCE,
    Mailwright,
    Postfix,
    fmt,
    raise_fd_limit,
    rotation,
    smtp_source,
)
from smtp_accept import AiosmtpdFsync, accept_run, stop

ROOT = Path(__file__).resolve().parent.parent
CASES = [(4 * 1024, 3000), (100 * 1024, 600)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2,
                    help="Mailwright worker processes (config `workers`)")
    args = ap.parse_args()
    for tool in (SMTP_SOURCE, POSTFIX):
        if not os.path.exists(tool):
            sys.exit(f"{tool} not found: run `make test-deps` (Debian package postfix)")
    raise_fd_limit()
    work = Path(tempfile.mkdtemp(prefix="mw-bench-", dir=ROOT / "bench"))
    launcher = [sys.executable, str(ROOT / "bench" / "ceiling_server.py")]
    servers: list = []
    rate: dict[tuple[str, int], list[float]] = {}
    cpu: dict[tuple[str, int], list[float]] = {}
    busy: dict[tuple[str, int], list[float]] = {}
    try:
        servers += [Mailwright(work, name=mode, workers=args.workers,
                               launcher=launcher + [mode]) for mode in MODES]
        servers += [AiosmtpdFsync(work), Postfix(work)]
        for size, count in CASES:
            for server in servers:          # warm-up, not counted
                smtp_source(server.port, 200, size, args.sessions)
            for run in range(args.runs):
                for server in rotation(servers, run):
                    measured = accept_run(server, count, size, args.sessions)
                    key = (server.name, size)
                    rate.setdefault(key, []).append(measured.rate)
                    cpu.setdefault(key, []).append(measured.cpu)
                    busy.setdefault(key, []).append(measured.busy)
        print(f"\nSMTP accept ceilings, {args.sessions} sessions, {args.runs} rotating runs, "
              f"Mailwright with {args.workers} worker(s): messages/s (median [min-max]), "
              f"server CPU µs per message, machine CPUs busy during the run; then the "
              f"ratios to the peers")
        for size, count in CASES:
            print(f"  {size // 1024}KB x {count}")
            peers = {name: statistics.median(rate[(name, size)])
                     for name in ("aiosmtpd+fsync", "postfix")}
            for server in servers:
                key = (server.name, size)
                median = statistics.median(rate[key])
                ratios = "" if server.name in peers else "  " + ", ".join(
                    f"{median / peer:.2f}x {name}" for name, peer in peers.items())
                print(f"    {server.name:<16} {fmt(rate[key]):>22}  "
                      f"{statistics.median(cpu[key]):6.0f} µs/msg  "
                      f"{statistics.median(busy[key]):3.0f}% busy{ratios}")
    finally:
        for server in servers:
            stop(server)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
