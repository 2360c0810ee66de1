"""Sending through the HTTP API vs authenticated SMTP submission, side by side in one run.

One Mailwright server; the same messages (4 KB of text, from alice to alice, so both
paths end in the same signed, durable local delivery) go in through
POST /api/v1/messages (httpx, keep-alive, Bearer key) and through submission on 587
(smtplib, STARTTLS + AUTH PLAIN once per connection, connections reused), with the same
number of concurrent clients. Runs alternate between the two paths so machine noise
hits both alike. Prints messages/s medians and the ratio API / SMTP.

    .venv/bin/python bench/send_api.py [--runs 5] [--messages 1000] [--clients 8]
"""

from __future__ import annotations

import argparse
import shutil
import smtplib
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from common import PASSWORD, Mailwright, fmt, free_port, raise_fd_limit

ROOT = Path(__file__).resolve().parent.parent
USER = "alice@example.test"
TEXT = ("The quick brown fox jumps over the lazy dog. " * 90)[:4000]


def api_client(base: str, token: str, count: int) -> None:
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"},
                      timeout=60) as client:
        for i in range(count):
            r = client.post("/api/v1/messages", json={
                "from": USER, "to": [USER], "subject": f"bench {i}", "text": TEXT})
            if r.status_code != 201:
                sys.exit(f"send API answered {r.status_code}: {r.text}")


def smtp_client(port: int, ca: Path, count: int) -> None:
    ctx = ssl.create_default_context(cafile=str(ca))
    with smtplib.SMTP("127.0.0.1", port, local_hostname="bench.example.net",
                      timeout=60) as smtp:
        smtp.starttls(context=ctx)
        smtp.login(USER, PASSWORD)
        for i in range(count):
            msg = (f"From: {USER}\r\nTo: {USER}\r\nSubject: bench {i}\r\n"
                   f"Message-ID: <b{i}.{time.monotonic_ns()}@example.test>\r\n\r\n{TEXT}\r\n")
            smtp.sendmail(USER, [USER], msg.encode())


def timed(fn, clients: int, total: int) -> float:
    per = total // clients
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for f in [pool.submit(fn, per) for _ in range(clients)]:
            f.result()
    return per * clients / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=8)
    args = ap.parse_args()
    raise_fd_limit()
    work = Path(tempfile.mkdtemp(prefix="mw-bench-", dir=ROOT / "bench"))
    http_port = free_port()
    server = Mailwright(work, extra=f'[[listeners]]\nrole = "http"\nport = {http_port}\n'
                                    "[http]\nrate_limit = 0\n")
    try:
        cli = [sys.executable, "-m", "mailwright", "--config", str(server.config)]
        subprocess.run(cli + ["dkim", "generate", "example.test"], check=True,
                       capture_output=True)
        token = subprocess.run(cli + ["apikey", "create", "bench", "--scope", "admin"],
                               check=True, capture_output=True, text=True
                               ).stdout.strip().splitlines()[-1]
        ca = server.dir / "data" / "tls" / "ca.pem"
        paths = {
            "send API": lambda n: api_client(f"http://127.0.0.1:{http_port}", token, n),
            "submission": lambda n: smtp_client(server.ports["submission"], ca, n),
        }
        for fn in paths.values():                  # warm-up, not counted
            timed(fn, args.clients, args.clients * 10)
        rates: dict[str, list[float]] = {name: [] for name in paths}
        for run in range(args.runs):
            order = list(paths.items())
            for name, fn in order if run % 2 == 0 else order[::-1]:
                rates[name].append(timed(fn, args.clients, args.messages))
        print(f"\nSending {args.messages} 4 KB messages, {args.clients} concurrent clients, "
              f"{args.runs} alternating runs, messages/s (median [min-max])")
        print(f"{'send API':>24}  {'SMTP submission':>24}  {'ratio':>6}")
        api, smtp = rates["send API"], rates["submission"]
        print(f"{fmt(api):>24}  {fmt(smtp):>24}  "
              f"{statistics.median(api) / statistics.median(smtp):5.2f}x")
    finally:
        server.proc.terminate()
        server.proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
