"""Memory: the server's resident memory idle, with thousands of idle connections, and at
the peak of one large message received over SMTP. Mailwright, with Dovecot (IMAP) and
Postfix (SMTP) as peers where they are installed.

Each server is fresh (memory freed by earlier work would hide the cost) and measured as
a process tree (Mailwright's supervisor and workers, Dovecot's and Postfix's process per
connection): RSS summed, and PSS (smaps_rollup), which counts a page shared by several
processes once in all — the fair figure for servers that fork. Idle connections are
opened 100 at a time on loopback and kept in the state a client leaves them in:

  SMTP   greeted, EHLO answered (Mailwright's mx listener, Postfix's smtpd)
  IMAP   LOGIN, SELECT INBOX, IDLE (what a desktop or phone client sits in)

then the 24 MiB message is sent over SMTP to a second fresh Mailwright (and a fresh
Postfix) while its memory is sampled every 10 ms (and VmHWM, the kernel's own peak, read
per process after), and fetched back whole over IMAP the same way.

    .venv/bin/python bench/memory.py [--smtp 5000] [--imap 5000] [--message-mib 24]
                                     [--workers 1] [--no-peers]
"""

from __future__ import annotations

import argparse
import asyncio
import imaplib
import os
import shutil
import smtplib
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import (
    DOVECOT,
    PASSWORD,
    POSTFIX,
    Dovecot,
    Mailwright,
    Postfix,
    raise_fd_limit,
    tree_pids,
    tree_pss_mb,
    tree_rss_mb,
)

USER = "alice@example.test"
BATCH = 100                    # connections opened at once
SETTLE = 2.0                   # seconds for the server to finish with the last ones


# --- idle clients ----------------------------------------------------------------------
async def _until(reader: asyncio.StreamReader, prefix: bytes) -> None:
    """Read lines until one starts with prefix; anything else ending the exchange fails."""
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError(f"closed while waiting for {prefix!r}")
        if line.startswith(prefix):
            return
        if line[:1] in (b"4", b"5") or line.split(b" ", 2)[1:2] in ([b"NO"], [b"BAD"]):
            raise RuntimeError(f"refused: {line!r}")


async def _smtp_idle(port: int) -> asyncio.StreamWriter:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await _until(reader, b"220 ")
    writer.write(b"EHLO client.example.net\r\n")
    await _until(reader, b"250 ")
    return writer


async def _imap_idle(port: int, user: str) -> asyncio.StreamWriter:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await _until(reader, b"* OK")
    writer.write(f'a LOGIN "{user}" "{PASSWORD}"\r\nb SELECT INBOX\r\nc IDLE\r\n'.encode())
    await _until(reader, b"a OK")
    await _until(reader, b"b OK")
    await _until(reader, b"+ ")
    return writer


async def _open(count: int, connect) -> list[asyncio.StreamWriter]:
    conns: list[asyncio.StreamWriter] = []
    for start in range(0, count, BATCH):
        conns += await asyncio.gather(*(connect() for _ in range(min(BATCH, count - start))))
    return conns


def memory(pid: int) -> tuple[float, float]:
    """(RSS, PSS) of the process tree, MB."""
    return tree_rss_mb(pid), tree_pss_mb(pid)


async def idle_run(pid: int, steps: list[tuple[str, int, object]]) -> list[tuple]:
    """Memory before, then after each step's connections are open (all kept open to
    the end): rows of (label, count, RSS, PSS)."""
    await asyncio.sleep(SETTLE)
    rows = [("idle", 0, *memory(pid))]
    conns: list[asyncio.StreamWriter] = []
    for label, count, connect in steps:
        conns += await _open(count, connect)
        await asyncio.sleep(SETTLE)
        rows.append((label, count, *memory(pid)))
    for w in conns:
        w.close()
    return rows


def report_idle(name: str, rows: list[tuple]) -> None:
    _, _, rss0, pss0 = rows[0]
    print(f"  {name:<10} idle server            RSS {rss0:8.1f} MB   PSS {pss0:8.1f} MB")
    prev_rss, prev_pss = rss0, pss0
    for label, count, rss, pss in rows[1:]:
        print(f"  {name:<10} + {count} idle {label:<5}  RSS {rss:8.1f} MB   PSS {pss:8.1f} MB"
              f"   per connection: RSS {(rss - prev_rss) * 1024 / count:6.1f} KB,"
              f" PSS {(pss - prev_pss) * 1024 / count:6.1f} KB")
        prev_rss, prev_pss = rss, pss


# --- one large message ------------------------------------------------------------------
def large_message(size: int) -> bytes:
    """A message with a base64 attachment (76-octet lines, as mail clients send)."""
    line = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAx\r\n"
    head = (f"From: <bench@remote.test>\r\nTo: <{USER}>\r\nSubject: large\r\n"
            "Message-ID: <large.bench@remote.test>\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
            "Content-Type: application/octet-stream\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n").encode()
    tail = b"--b--\r\n"
    return head + line * ((size - len(head) - len(tail)) // len(line)) + tail


def _reset_peaks(pid: int) -> None:
    for p in tree_pids(pid):
        try:
            Path(f"/proc/{p}/clear_refs").write_text("5")   # VmHWM := VmRSS
        except OSError:
            pass


def _hwm_mb(pid: int) -> float:
    total = 0
    for p in tree_pids(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def peak_during(pid: int, action) -> tuple[float, float, float]:
    """(RSS before, sampled peak RSS, sum of VmHWM) of a process tree while action() runs."""
    time.sleep(SETTLE)
    before = tree_rss_mb(pid)
    _reset_peaks(pid)
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], tree_rss_mb(pid))
    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        action()
    finally:
        done.set()
        sampler.join()
    return before, peak[0], _hwm_mb(pid)


def send(port: int, rcpt: str, message: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, "client.example.net", timeout=300) as s:
        s.sendmail("bench@remote.test", [rcpt], message)


def fetch_all(port: int) -> None:
    """UID FETCH 1:* BODY.PEEK[] of USER's INBOX."""
    with imaplib.IMAP4("127.0.0.1", port, timeout=300) as m:
        m.login(USER, PASSWORD)
        m.select("INBOX", readonly=True)
        typ, data = m.uid("FETCH", "1:*", "(BODY.PEEK[])")
        if typ != "OK":
            raise RuntimeError(f"FETCH failed: {data!r}")


def report_peak(name: str, what: str, size: int, peak: tuple[float, float, float]) -> None:
    before, sampled, hwm = peak
    print(f"  {name:<10} {what:<8} RSS {before:7.1f} MB before, peak {sampled:7.1f} MB sampled "
          f"/ {hwm:7.1f} MB VmHWM (+{sampled - before:.1f} MB, "
          f"{(sampled - before) / (size / 2**20):.2f}x the message)")


# --- the servers ------------------------------------------------------------------------
def mailwright(work: Path, workers: int) -> Mailwright:
    mw = Mailwright(work, USER, extra="[imap]\nallow_plaintext_auth = true\n", workers=workers)
    mw.name = "mailwright"
    return mw


def dovecot(work: Path, connections: int) -> Dovecot:
    """Dovecot's defaults but for the limits: a login process per connection being
    logged in, then an imap process per connection (client_limit = 1)."""
    limit = connections + 100
    return Dovecot(work, "imap", {"": []}, scheme="PLAIN", extra=f"""
mail_max_userip_connections = {limit}
default_process_limit = {limit}
default_client_limit = {limit}
service imap {{
  process_limit = {limit}
}}
service anvil {{
  client_limit = {limit * 3}
}}
service auth {{
  client_limit = {limit * 3}
}}
""")


def postfix(work: Path, connections: int) -> Postfix:
    """smtpd per connection (Postfix's design), up to `connections` of them; mail is
    queued (fsynced) and discarded."""
    return Postfix(work, extra=f"""default_process_limit = {connections + 100}
smtpd_client_connection_count_limit = 0
message_size_limit = 0
""")


def pid_of(server) -> int:
    return server.pid if isinstance(server, Postfix) else server.proc.pid


def stop(server) -> None:
    if isinstance(server, Postfix):
        server.stop()
    else:
        server.proc.terminate()
        server.proc.wait(60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smtp", type=int, default=5000, help="idle SMTP connections")
    ap.add_argument("--imap", type=int, default=5000, help="idle IMAP connections")
    ap.add_argument("--message-mib", type=int, default=24)
    ap.add_argument("--workers", type=int, default=1, help="Mailwright worker processes")
    ap.add_argument("--no-peers", action="store_true", help="Mailwright only")
    ap.add_argument("--peer-connections", type=int, default=0,
                    help="idle connections for Dovecot and Postfix (default: as many as "
                         "Mailwright's); they fork a process for each, so fewer keep the "
                         "run short, and the cost per connection is what compares")
    args = ap.parse_args()
    peer_imap = min(args.imap, args.peer_connections or args.imap)
    peer_smtp = min(args.smtp, args.peer_connections or args.smtp)
    raise_fd_limit()               # the servers started here inherit it too
    work = Path(tempfile.mkdtemp(prefix="mw-bench-"))
    servers: list = []
    try:
        print(f"idle connections: {args.smtp} SMTP (EHLO), {args.imap} IMAP (LOGIN, SELECT, "
              f"IDLE); mailwright workers = {args.workers}", flush=True)
        (work / "idle").mkdir()
        mw = mailwright(work / "idle", args.workers)
        servers.append(mw)
        rows = asyncio.run(idle_run(mw.proc.pid, [
            ("SMTP", args.smtp, lambda: _smtp_idle(mw.ports["mx"])),
            ("IMAP", args.imap, lambda: _imap_idle(mw.ports["imap"], USER))]))
        stop(servers.pop())
        report_idle("mailwright", rows)
        if not args.no_peers and os.path.exists(DOVECOT) \
                and os.path.exists("/usr/lib/dovecot/imap") and args.imap:
            dc = dovecot(work, peer_imap)
            servers.append(dc)
            rows = asyncio.run(idle_run(dc.proc.pid, [
                ("IMAP", peer_imap, lambda: _imap_idle(dc.port, USER))]))
            stop(servers.pop())
            report_idle("dovecot", rows)
        if not args.no_peers and os.path.exists(POSTFIX) and args.smtp:
            pf = postfix(work, peer_smtp)
            servers.append(pf)
            rows = asyncio.run(idle_run(pf.pid, [
                ("SMTP", peer_smtp, lambda: _smtp_idle(pf.port))]))
            stop(servers.pop())
            report_idle("postfix", rows)
        if args.message_mib:
            size = args.message_mib << 20
            message = large_message(size)
            (work / "large").mkdir()
            targets = [mailwright(work / "large", args.workers)]
            if not args.no_peers and os.path.exists(POSTFIX):
                targets.append(postfix(work / "large", 10))
            servers += targets
            print(f"\none {args.message_mib} MiB message received over SMTP by a fresh server "
                  "(then fetched whole over IMAP):")
            for server in targets:
                rcpt = server.recipient if isinstance(server, Postfix) else USER
                report_peak(server.name, "SMTP in", size, peak_during(
                    pid_of(server), lambda s=server, r=rcpt: send(s.port, r, message)))
            fresh = targets[0]
            report_peak(fresh.name, "IMAP out", size, peak_during(
                fresh.proc.pid, lambda: fetch_all(fresh.ports["imap"])))
    finally:
        for s in servers:
            stop(s)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
