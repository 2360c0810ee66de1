"""Several nodes (issue 19): SQLite on one node vs PostgreSQL with 1 node vs 2 nodes,
side by side in one run.

The three setups run at once, each on its own ports: Mailwright on SQLite (the
default), one Mailwright node on PostgreSQL and two nodes on another PostgreSQL
database of the same server (a private cluster, tests/pg.py: initdb + pg_ctl in a
temporary directory, fsync on). Measured, setups rotating between runs so machine
noise hits all alike:

  SMTP accept    smtp-source, 4 KB messages, 20 sessions in all (10 per node with
                 two nodes, both at once), durable before 250; messages/s
  IMAP mixed     8 clients (4 per node with two) on a 2,000-message INBOX: FETCH
                 envelopes, a body, STORE, SEARCH, STATUS, NOOP (bench/imap.py); op/s

and where the time goes: CPU per message of the Mailwright processes and of the
PostgreSQL server (its whole process tree, /proc), and the wall time of each run.
On one machine the nodes share its cores with each other and with PostgreSQL: the
figures compare the setups' costs, not a cluster's capacity on separate machines.

    .venv/bin/python bench/cluster.py [--runs 3] [--messages 1500] [--inbox 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import smtplib
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import (
    SMTP_SOURCE,
    Mailwright,
    fmt,
    free_port,
    raise_fd_limit,
    rotation,
    smtp_source,
    tree_cpu_seconds,
)
from imap import USER, Client, make_messages, mixed

ROOT = Path(__file__).resolve().parent.parent


class Setup:
    """One or more Mailwright nodes on one store."""

    def __init__(self, name: str, nodes: list[Mailwright], db_pid: int | None = None):
        self.name = name
        self.nodes = nodes
        self.db_pid = db_pid

    def cpu(self) -> tuple[float, float]:
        """CPU seconds so far: (the nodes', the database server's)."""
        return (sum(tree_cpu_seconds(n.proc.pid) for n in self.nodes),
                tree_cpu_seconds(self.db_pid) if self.db_pid else 0.0)

    def stop(self) -> None:
        for n in self.nodes:
            n.proc.terminate()
            n.proc.wait(30)


def postgres_setup(work: Path, pg, name: str, count: int) -> Setup:
    from mailwright.store.postgresql.migrate import migrate
    dsn = pg.create_database()
    migrate(dsn)
    extra = (f'[store]\nbackend = "postgresql"\ndsn = "{dsn}"\n'
             "[imap]\nallow_plaintext_auth = true\n")
    nodes = [Mailwright(work, USER, extra=extra, name=f"{name}-{i}", setup=i == 0)
             for i in range(count)]
    postmaster = int((pg.datadir / "postmaster.pid").read_text().split()[0])
    return Setup(name, nodes, postmaster)


def smtp_run(setup: Setup, messages: int, sessions: int) -> float:
    """Messages/s accepted by the setup's nodes together."""
    share = len(setup.nodes)
    with ThreadPoolExecutor(share) as pool:
        start = time.perf_counter()
        list(pool.map(lambda n: smtp_source(n.ports["mx"], messages // share, 4096,
                                            sessions // share), setup.nodes))
        return messages // share * share / (time.perf_counter() - start)


async def mixed_run(setup: Setup, count: int, clients: int) -> float:
    """IMAP op/s of `clients` mixed-load clients spread over the nodes, all at once."""
    share = clients // len(setup.nodes)
    return sum(await asyncio.gather(*(mixed(n.ports["imap"], count, clients=share)
                                      for n in setup.nodes)))


def fill(setup: Setup, inbox: list[bytes], connections: int = 4) -> None:
    """The INBOX by SMTP, the way mail arrives (four connections)."""
    def send(part: list[bytes]) -> None:
        with smtplib.SMTP("127.0.0.1", setup.nodes[0].ports["mx"], timeout=60) as s:
            for message in part:
                s.sendmail("bench@remote.test", [USER], message)
    with ThreadPoolExecutor(connections) as pool:
        list(pool.map(send, [inbox[i::connections] for i in range(connections)]))
    asyncio.run(_search_mailbox(setup.nodes[0].ports["imap"]))


async def _search_mailbox(port: int) -> None:
    c = Client()
    await c.connect(port)
    await c.login()
    await c.cmd('CREATE "Search"')               # the mixed load asks its STATUS
    c.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--messages", type=int, default=1500, help="SMTP messages per run")
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--inbox", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=8)
    args = ap.parse_args()
    if not os.path.exists(SMTP_SOURCE):
        sys.exit(f"{SMTP_SOURCE} not found: run `make test-deps` (Debian package postfix)")
    sys.path.insert(0, str(ROOT))
    from tests.pg import PostgresCluster, pg_bindir
    if pg_bindir() is None:
        sys.exit("no PostgreSQL server: run `make test-deps` (Debian package postgresql)")
    raise_fd_limit()
    work = Path(tempfile.mkdtemp(prefix="mw-bench-", dir=ROOT / "bench"))
    pg = PostgresCluster(free_port()).start()
    setups: list[Setup] = []
    try:
        setups = [Setup("sqlite, 1 node",
                        [Mailwright(work, USER, name="sqlite",
                                    extra="[imap]\nallow_plaintext_auth = true\n")]),
                  postgres_setup(work, pg, "postgresql, 1 node", 1),
                  postgres_setup(work, pg, "postgresql, 2 nodes", 2)]
        for s in setups:
            s.nodes[0].add_user("alice@example.test")       # smtp-source's recipient
        inbox = make_messages(args.inbox, 9051)
        print(f"loading {len(inbox)} messages into each setup ...", flush=True)
        for s in setups:
            fill(s, inbox)
            smtp_run(s, 200, args.sessions)                     # warm-up, not counted
        smtp: dict[str, list[float]] = {s.name: [] for s in setups}
        imap: dict[str, list[float]] = {s.name: [] for s in setups}
        cost: dict[str, list[tuple[float, float]]] = {s.name: [] for s in setups}
        for run in range(args.runs):
            for s in rotation(setups, run):
                nodes, db = s.cpu()
                smtp[s.name].append(smtp_run(s, args.messages, args.sessions))
                nodes2, db2 = s.cpu()
                cost[s.name].append(((nodes2 - nodes) * 1e6 / args.messages,
                                     (db2 - db) * 1e6 / args.messages))
                imap[s.name].append(asyncio.run(mixed_run(s, len(inbox), args.clients)))
        base_smtp = statistics.median(smtp[setups[0].name])
        base_imap = statistics.median(imap[setups[0].name])
        print(f"\nSeveral nodes, {args.runs} rotating runs, medians [min-max]; ratio to "
              f"SQLite on one node. SMTP accept: 4 KB, {args.sessions} sessions in all; "
              f"IMAP mixed: {args.clients} clients in all, {len(inbox)}-message INBOX")
        for s in setups:
            node_us = statistics.median(c[0] for c in cost[s.name])
            db_us = statistics.median(c[1] for c in cost[s.name])
            print(f"  {s.name:<20} SMTP {fmt(smtp[s.name])} msg/s "
                  f"({statistics.median(smtp[s.name]) / base_smtp:4.2f}x), CPU/msg "
                  f"{node_us:5.0f} µs nodes + {db_us:5.0f} µs postgres   "
                  f"IMAP mixed {fmt(imap[s.name])} op/s "
                  f"({statistics.median(imap[s.name]) / base_imap:4.2f}x)")
    finally:
        for s in setups:
            s.stop()
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
