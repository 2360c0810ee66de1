"""Logins: Mailwright vs Dovecot, IMAP LOGIN+LOGOUT and POP3 USER/PASS+QUIT, side by side.

Every cycle is a new TCP connection: greeting, one login with the password, logout —
what phones and desktops do all day. 10 clients at once, each cycle bounded by a
timeout, for a fixed time per round; rounds alternate between the servers; medians
of the rounds, and each server's CPU per login (its whole process tree, from /proc).

Peers, all on plaintext loopback:
  dovecot-argon2   Dovecot from Debian, {ARGON2ID} at Mailwright's default parameters
                   (the like-for-like row), no auth cache (Dovecot's default)
  dovecot-plain    Dovecot with {PLAIN} passwords: no hashing at all (the upper bound)
  mailwright       its default credential cache on ([auth] cache_size)
  mailwright-nocache  [auth] cache_size = 0: argon2 on every login

    .venv/bin/python bench/logins.py [--rounds 3] [--seconds 5] [--clients 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import DOVECOT, PASSWORD, Dovecot, Mailwright, tree_cpu_seconds

CYCLE_TIMEOUT = 10.0


def user(client: int) -> str:
    """One user per client: POP3 locks the maildrop for a session (RFC 1939 §8)."""
    return f"bench{client}@example.test"


async def _imap_cycle(port: int, user: str) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await reader.readline()                                   # * OK greeting
        writer.write(f'a LOGIN "{user}" "{PASSWORD}"\r\nb LOGOUT\r\n'.encode())
        while True:
            line = await reader.readline()
            if not line:
                raise ConnectionError("closed before the LOGOUT answer")
            if line.startswith(b"a ") and not line.startswith(b"a OK"):
                raise RuntimeError(f"login refused: {line!r}")
            if line.startswith(b"b "):
                return
    finally:
        writer.close()


async def _pop3_cycle(port: int, user: str) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await reader.readline()                                   # +OK greeting
        writer.write(f"USER {user}\r\nPASS {PASSWORD}\r\nQUIT\r\n".encode())
        for what in ("USER", "PASS", "QUIT"):
            line = await reader.readline()
            if not line.startswith(b"+OK"):
                raise RuntimeError(f"{what} refused: {line!r}")
    finally:
        writer.close()


CYCLES = {"imap": _imap_cycle, "pop3": _pop3_cycle}


async def _round(cycle, port: int, clients: int, seconds: float) -> int:
    deadline = time.monotonic() + seconds
    done = 0

    async def client(n: int) -> None:
        nonlocal done
        while time.monotonic() < deadline:
            await asyncio.wait_for(cycle(port, user(n)), CYCLE_TIMEOUT)
            done += 1
    await asyncio.gather(*(client(n) for n in range(clients)))
    return done


def measure(server, protocol: str, clients: int, seconds: float) -> tuple[float, float]:
    """(logins per second, server CPU milliseconds per login) over one round."""
    port = server.ports[protocol] if isinstance(server, Mailwright) else server.port
    cpu = tree_cpu_seconds(server.proc.pid)
    start = time.perf_counter()
    done = asyncio.run(_round(CYCLES[protocol], port, clients, seconds))
    elapsed = time.perf_counter() - start
    cpu = tree_cpu_seconds(server.proc.pid) - cpu
    return done / elapsed, cpu * 1000 / max(done, 1)


def start_servers(work: Path, protocol: str, clients: int) -> list:
    plaintext = f"[{protocol}]\nallow_plaintext_auth = true\n"
    mw = Mailwright(work / "cached", user(0), extra=plaintext)
    nocache = Mailwright(work / "nocache", user(0),
                         extra=plaintext + "[auth]\ncache_size = 0\n")
    nocache.name = "mailwright-nocache"
    for server in (mw, nocache):
        for n in range(1, clients):
            server.add_user(user(n))
    folders = {"": []}
    return [mw, nocache,
            Dovecot(work, protocol, folders, scheme="ARGON2ID", name="dovecot-argon2"),
            Dovecot(work, protocol, folders, scheme="PLAIN", name="dovecot-plain")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--clients", type=int, default=10)
    args = ap.parse_args()
    if not os.path.exists(DOVECOT):
        sys.exit(f"{DOVECOT} not found: run `make bench-deps`")
    for protocol in ("imap", "pop3"):
        work = Path(tempfile.mkdtemp(prefix="mw-bench-", dir=Path(__file__).parent))
        for sub in ("cached", "nocache"):
            (work / sub).mkdir()
        servers = []
        try:
            servers = start_servers(work, protocol, args.clients)
            for server in servers:                                  # warm-up
                measure(server, protocol, args.clients, 1.0)
            rates: dict[str, list[float]] = {s.name: [] for s in servers}
            cpus: dict[str, list[float]] = {s.name: [] for s in servers}
            for r in range(args.rounds):
                for server in (servers if r % 2 == 0 else servers[::-1]):
                    rate, cpu = measure(server, protocol, args.clients, args.seconds)
                    rates[server.name].append(rate)
                    cpus[server.name].append(cpu)
            what = "LOGIN+LOGOUT" if protocol == "imap" else "USER/PASS+QUIT"
            print(f"\n{protocol.upper()} {what}, a new connection each, {args.clients} clients, "
                  f"{args.rounds} alternating rounds of {args.seconds:.0f} s (medians)")
            mw = statistics.median(rates["mailwright"])
            for name in rates:
                rate = statistics.median(rates[name])
                print(f"  {name:19} {rate:7.0f} logins/s  {statistics.median(cpus[name]):6.2f} "
                      f"ms CPU/login  mailwright = {mw / rate:.2f}x")
        finally:
            for server in servers:
                server.proc.terminate()
                server.proc.wait(30)
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
