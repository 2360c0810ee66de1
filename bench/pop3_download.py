"""POP3 download throughput: Mailwright vs Dovecot's pop3, side by side in one run.

Both servers hold the same 1,000 messages of mixed sizes (Mailwright gets them over
SMTP, Dovecot as maildir files) and serve them on loopback without TLS. Both check
the same argon2id password hash at login (Dovecot's {ARGON2ID} scheme), so the
login costs the same on both sides. The client
is mpop (Debian), fetching everything with --keep=on into a maildir on tmpfs; runs
alternate between the servers. Prints messages/s and MB/s medians and the ratio.

    .venv/bin/python bench/pop3_download.py [--runs 5] [--messages 1000]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DOVECOT, PASSWORD, Dovecot, Mailwright, fmt

USER = "bench@example.test"


def make_messages(count: int) -> list[bytes]:
    """Realistic-looking messages, 1 KB to 300 KB (most small, a few large)."""
    rng = random.Random(1939)
    words = ("mail server queue relay inbox report meeting invoice draft review "
             "schedule budget release notes customer support ticket").split()
    out = []
    for i in range(count):
        size = int(min(300_000, max(1000, rng.lognormvariate(8.3, 1.1))))
        lines = [f"From: Sender {i} <s{i}@remote.test>", f"To: {USER}",
                 f"Subject: {' '.join(rng.choices(words, k=5))}",
                 f"Message-ID: <{i}.bench@remote.test>",
                 "Date: Sun, 29 Nov 2026 12:00:00 +0000", "MIME-Version: 1.0",
                 "Content-Type: text/plain; charset=utf-8", ""]
        body = []
        total = sum(len(x) + 2 for x in lines)
        while total < size:
            line = " ".join(rng.choices(words, k=rng.randint(4, 12)))
            if rng.random() < 0.02:
                line = "." + line                  # exercises dot-stuffing
            body.append(line)
            total += len(line) + 2
        out.append(("\r\n".join(lines + body) + "\r\n").encode())
    return out


def mailwright_with(work: Path, messages: list[bytes]) -> Mailwright:
    mw = Mailwright(work, USER, extra="[pop3]\nallow_plaintext_auth = true\n")
    mw.port = mw.ports["pop3"]
    with smtplib.SMTP("127.0.0.1", mw.ports["mx"], timeout=60) as s:
        for msg in messages:
            s.sendmail("bench@remote.test", [USER], msg)
    return mw


def download(port: int, target: Path) -> float:
    shutil.rmtree(target, ignore_errors=True)
    for sub in ("new", "cur", "tmp"):
        (target / sub).mkdir(parents=True)
    start = time.perf_counter()
    res = subprocess.run(
        ["mpop", "--host=127.0.0.1", f"--port={port}", "--tls=off", "--auth=user",
         f"--user={USER}", f"--passwordeval=echo {PASSWORD}", "--keep=on", "--only-new=off",
         "--received-header=off", f"--deliver=maildir,{target}",
         f"--uidls-file={target}.uidls"], capture_output=True, text=True, timeout=900)
    elapsed = time.perf_counter() - start
    if res.returncode != 0:
        sys.exit(f"mpop failed: {res.stderr.strip()}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--messages", type=int, default=1000)
    args = ap.parse_args()
    for tool in ("mpop", DOVECOT):
        if not shutil.which(tool) and not os.path.exists(tool):
            sys.exit(f"{tool} not found: run `make bench-deps`")
    messages = make_messages(args.messages)
    total_mb = sum(map(len, messages)) / 1e6
    work = Path(tempfile.mkdtemp(prefix="mw-bench-", dir=Path(__file__).parent))
    client_dir = Path(tempfile.mkdtemp(prefix="mw-pop3-", dir="/dev/shm"))
    servers = []
    try:
        dovecot = Dovecot(work, "pop3", {"": messages}, extra="pop3_uidl_format = %08Xu%08Xv\n")
        servers = [mailwright_with(work, messages), dovecot]
        rates: dict[str, list[float]] = {s.name: [] for s in servers}
        for server in servers:                       # warm-up
            download(server.port, client_dir / "warm")
        for run in range(args.runs):
            for server in (servers if run % 2 == 0 else servers[::-1]):
                elapsed = download(server.port, client_dir / server.name)
                got = len(list((client_dir / server.name / "new").iterdir()))
                if got != len(messages):
                    sys.exit(f"{server.name}: downloaded {got} of {len(messages)} messages")
                rates[server.name].append(len(messages) / elapsed)
        mw, dc = rates["mailwright"], rates["dovecot"]
        print(f"\nPOP3 download of {len(messages)} messages ({total_mb:.1f} MB) with mpop, "
              f"{args.runs} alternating runs, messages/s (median [min-max])")
        print(f"  mailwright {fmt(mw)}   ({statistics.median(mw) * total_mb / len(messages):.1f}"
              f" MB/s)")
        print(f"  dovecot    {fmt(dc)}   ({statistics.median(dc) * total_mb / len(messages):.1f}"
              f" MB/s)")
        print(f"  ratio      {statistics.median(mw) / statistics.median(dc):.2f}x "
              "(mailwright / dovecot)")
    finally:
        for server in servers:
            server.proc.terminate()
            server.proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(client_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
