"""Relay throughput: Mailwright vs Postfix, both relaying to Postfix's smtp-sink.

Each server gets the same load from smtp-source (20 sessions) on its SMTP port and
relays every message to one smtp-sink on loopback (Postfix through `relayhost`,
Mailwright through an alias to a remote address and `[relayhost] tls = "none"`),
both without TLS. A run ends when the sink has counted every message; runs
alternate between the servers. Prints messages/s (injection to last delivery)
medians and the ratio.

    .venv/bin/python bench/relay.py [--runs 3] [--messages 10000]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, Mailwright, fmt, free_port, wait_port

sys.path.insert(0, str(ROOT))
from tests.postfix import POSTFIX
from tests.postfix import Postfix as PostfixInstance

SMTP_SOURCE = "/usr/sbin/smtp-source"
SMTP_SINK = "/usr/sbin/smtp-sink"


class Sink:
    def __init__(self, work: Path):
        self.port = free_port()
        self.out = work / f"sink-{self.port}.out"
        self.proc = subprocess.Popen([SMTP_SINK, "-c", "-u", "nobody",
                                      f"127.0.0.1:{self.port}", "1024"],
                                     stdout=open(self.out, "wb"), stderr=subprocess.STDOUT)
        wait_port(self.port, self.proc)

    def count(self) -> int:
        found = re.findall(rb"mesg=(\d+)", self.out.read_bytes()[-200:])
        return int(found[-1]) if found else 0

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Postfix(PostfixInstance):
    """Relaying everything to the sink, as MailwrightRelay does."""

    def __init__(self, work: Path, sink_port: int):
        super().__init__(work, free_port(), f"""mydestination =
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:{sink_port}
smtpd_relay_restrictions = permit_mynetworks, reject
smtp_tls_security_level = none
default_destination_concurrency_limit = 20
""", hostname="bench.example.test")
        self.recipient = "rcpt@sink.test"


class MailwrightRelay:
    name = "mailwright"

    def __init__(self, work: Path, sink_port: int, workers: int):
        self.mw = Mailwright(work, extra=(
            f'[relayhost]\nhost = "127.0.0.1"\nport = {sink_port}\ntls = "none"\n'
            "[queue]\ninterval = 1.0\n"), workers=workers)
        subprocess.run([sys.executable, "-m", "mailwright", "--config", str(self.mw.config),
                        "alias", "add", "relay@example.test", "rcpt@sink.test"],
                       check=True, capture_output=True)
        self.port = self.mw.ports["mx"]
        self.recipient = "relay@example.test"

    def stop(self) -> None:
        self.mw.proc.terminate()
        self.mw.proc.wait(30)


def relay_once(server, sink: Sink, messages: int, size: int, sessions: int) -> float:
    base = sink.count()
    start = time.perf_counter()
    res = subprocess.run([SMTP_SOURCE, "-s", str(sessions), "-m", str(messages), "-l",
                          str(size), "-M", "client.example.net", "-f", "bench@remote.test",
                          "-t", server.recipient, f"127.0.0.1:{server.port}"],
                         capture_output=True, text=True, timeout=1800)
    if res.returncode != 0:
        sys.exit(f"smtp-source failed: {res.stderr.strip()}")
    deadline = time.monotonic() + 1800
    while sink.count() < base + messages:
        if time.monotonic() > deadline:
            sys.exit(f"{server.name}: only {sink.count() - base} of {messages} relayed")
        time.sleep(0.05)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    for tool in (SMTP_SOURCE, SMTP_SINK, POSTFIX):
        if not os.path.exists(tool):
            sys.exit(f"{tool} not found: run `make bench-deps` (Debian package postfix)")
    work = Path(tempfile.mkdtemp(prefix="mw-bench-", dir=Path(__file__).parent))
    sinks, servers = [], []
    try:
        sinks = [Sink(work), Sink(work)]
        servers = [MailwrightRelay(work, sinks[0].port, args.workers),
                   Postfix(work, sinks[1].port)]
        rates: dict[str, list[float]] = {s.name: [] for s in servers}
        for server, sink in zip(servers, sinks, strict=True):     # warm-up
            relay_once(server, sink, 200, args.size, args.sessions)
        for run in range(args.runs):
            pairs = list(zip(servers, sinks, strict=True))
            for server, sink in (pairs if run % 2 == 0 else pairs[::-1]):
                elapsed = relay_once(server, sink, args.messages, args.size, args.sessions)
                rates[server.name].append(args.messages / elapsed)
        mw, pf = rates["mailwright"], rates["postfix"]
        print(f"\nRelay of {args.messages} x {args.size // 1024} KB messages to smtp-sink, "
              f"{args.sessions} injecting sessions, {args.runs} alternating runs, "
              f"messages/s from first byte to last delivery (median [min-max])")
        print(f"  mailwright {fmt(mw)}  (workers = {args.workers})")
        print(f"  postfix    {fmt(pf)}")
        print(f"  ratio      {statistics.median(mw) / statistics.median(pf):.2f}x")
    finally:
        for server in servers:
            server.stop()
        for sink in sinks:
            sink.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
