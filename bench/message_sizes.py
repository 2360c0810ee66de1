"""Large SMTP messages: transfer rate and the server's peak memory, repeated.

A Mailwright server on loopback receives messages of 1, 5 and 24 MiB, each size
`--runs` times, over mx (DATA, no TLS) and over submission (STARTTLS + AUTH, BDAT
in 4 MiB chunks). Before each message the server's peak RSS is reset
(/proc/PID/clear_refs "5"); after the reply VmHWM gives the peak during that
message. Prints, per size and path, the median MB/s and the median and largest
peak growth over the RSS before the message (in MiB and in copies of the message).
The test suite measures one 24 MiB message (tests/e2e/test_message_sizes.py); this
is the long version.

    .venv/bin/python bench/message_sizes.py [--runs 10]
"""

from __future__ import annotations

import argparse
import base64
import os
import socket
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import PASSWORD, Mailwright

MIB = 1024 * 1024
USER = "alice@example.test"


def message(size: int) -> bytes:
    head = (f"From: <{USER}>\r\nTo: <{USER}>\r\nSubject: bench\r\nMIME-Version: 1.0\r\n"
            "Content-Type: application/octet-stream\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n").encode()
    data = base64.encodebytes(os.urandom(size * 3 // 4)).replace(b"\n", b"\r\n")
    return head + data[:size - len(head) - 2].rstrip(b"\r") + b"\r\n"


class Client:
    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.buf = b""
        self.expect(220)

    def expect(self, code: int) -> str:
        while True:
            while b"\r\n" not in self.buf:
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionError("closed")
                self.buf += data
            line, self.buf = self.buf.split(b"\r\n", 1)
            if line[3:4] != b"-":
                if int(line[:3]) != code:
                    raise RuntimeError(f"expected {code}, got {line!r}")
                return line.decode()

    def cmd(self, line: str, code: int) -> str:
        self.sock.sendall(line.encode() + b"\r\n")
        return self.expect(code)

    def send_data(self, msg: bytes) -> None:
        self.cmd("DATA", 354)
        self.sock.sendall(msg.replace(b"\r\n.", b"\r\n..") + b".\r\n")
        self.expect(250)

    def send_bdat(self, msg: bytes, chunk: int = 4 * MIB) -> None:
        for start in range(0, len(msg), chunk):
            piece = msg[start:start + chunk]
            last = " LAST" if start + chunk >= len(msg) else ""
            self.sock.sendall(f"BDAT {len(piece)}{last}\r\n".encode() + piece)
            self.expect(250)


def connect(server: Mailwright, path: str) -> Client:
    """A session ready for MAIL: on submission after STARTTLS and AUTH (whose argon2id
    check takes 64 MiB for a moment: not the message's cost, so done before)."""
    if path == "mx DATA":
        c = Client(server.ports["mx"])
        c.cmd("EHLO bench.example.net", 250)
        return c
    c = Client(server.ports["submission"])
    c.cmd("EHLO bench.example.net", 250)
    c.cmd("STARTTLS", 220)
    c.sock = ssl._create_unverified_context().wrap_socket(c.sock)
    c.cmd("EHLO bench.example.net", 250)
    token = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    c.cmd(f"AUTH PLAIN {token}", 235)
    return c


def deliver(c: Client, path: str, msg: bytes) -> None:
    c.cmd(f"MAIL FROM:<{USER}>", 250)
    c.cmd(f"RCPT TO:<{USER}>", 250)
    (c.send_data if path == "mx DATA" else c.send_bdat)(msg)
    c.cmd("QUIT", 221)
    c.sock.close()


def memory(pid: int) -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                out[name] = int(rest.split()[0]) * 1024
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mw-sizes-") as tmp:
        server = Mailwright(Path(tmp))
        pid = server.proc.pid
        try:
            print(f"{'size':>7} {'path':<24} {'MB/s':>7} {'peak +MiB (median/max)':>24} "
                  f"{'copies':>7} {'RSS after':>10}")
            for size in (1 * MIB, 5 * MIB, 24 * MIB):
                msg = message(size)
                for path in ("mx DATA", "submission TLS BDAT"):
                    rates, growth = [], []
                    for _ in range(args.runs):
                        client = connect(server, path)
                        time.sleep(0.1)
                        with open(f"/proc/{pid}/clear_refs", "w") as f:
                            f.write("5")
                        before = memory(pid)
                        started = time.perf_counter()
                        deliver(client, path, msg)
                        rates.append(size / (time.perf_counter() - started) / 1e6)
                        growth.append(memory(pid)["VmHWM"] - before["VmRSS"])
                    print(f"{size // MIB:>4} MiB {path:<24} {statistics.median(rates):>7.1f} "
                          f"{statistics.median(growth) / MIB:>13.0f} / "
                          f"{max(growth) / MIB:<8.0f} {max(growth) / size:>7.2f} "
                          f"{memory(pid)['VmRSS'] / MIB:>7.0f} MiB", flush=True)
        finally:
            server.proc.terminate()
            server.proc.wait(10)


if __name__ == "__main__":
    sys.exit(main())
