"""IMAP: Mailwright vs Dovecot (dovecot-imapd, no FTS plugin), side by side in one run.

Both servers get the same messages: a mailbox of 10,000 realistic messages (mixed
sizes and MIME structures) by APPEND (pipelined, LITERAL+, timed), and one of
100,000 small ones for search (Mailwright by APPEND over 4 connections, Dovecot as
maildir files, which it indexes on first use, before the warm-up). Then,
alternating servers, a few runs each of:

  FETCH 1:* (FLAGS ENVELOPE)          whole 10k mailbox, one command
  UID FETCH 1:* BODY.PEEK[]           whole 10k mailbox, MB/s
  SEARCH TEXT <word>                  100k mailbox (Dovecot reads the messages)
  UID STORE                           2,000 single-message flag changes, round trips
  mixed                               8 clients at once: FETCH envelopes, a body,
                                      STORE, SEARCH, STATUS, NOOP

and Mailwright's resident memory with 5,000 idle authenticated IMAP connections.
Both check the same argon2id password at LOGIN; the idle connections authenticate
with SCRAM-SHA-256, whose server side costs no password hashing. Medians and ratios.

    .venv/bin/python bench/imap.py [--runs 3] [--messages 10000] [--search 100000]
                                   [--idle 5000] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import DOVECOT, PASSWORD, Dovecot, Mailwright, raise_fd_limit, tree_rss_mb

USER = "bench@example.test"
WORDS = ("mail server queue relay inbox report meeting invoice draft review schedule "
         "budget release notes customer support ticket holiday travel contract payment "
         "design office project deadline weekly summary question answer").split()
RARE = "zanzibar"              # in about 1 message in 500


# --- messages ------------------------------------------------------------------------------------
def _text(rng: random.Random, size: int, rare: bool) -> str:
    lines, total = [], 0
    while total < size:
        line = " ".join(rng.choices(WORDS, k=rng.randint(6, 12)))
        lines.append(line)
        total += len(line) + 2
    if rare:
        lines.insert(rng.randrange(len(lines) + 1), f"meet me in {RARE.capitalize()} soon")
    return "\r\n".join(lines)


def make_message(rng: random.Random, i: int, size: int) -> bytes:
    rare = rng.random() < 0.002
    head = [f"From: Sender {i % 97} <s{i % 97}@remote.test>", f"To: {USER}",
            f"Subject: {' '.join(rng.choices(WORDS, k=5))}",
            f"Message-ID: <{i}.bench@remote.test>",
            f"Date: Sun, {1 + i % 28} Nov 2026 12:{i % 60:02d}:00 +0000", "MIME-Version: 1.0"]
    kind = rng.random()
    if kind < 0.6:
        head.append("Content-Type: text/plain; charset=utf-8")
        body = _text(rng, size, rare)
    elif kind < 0.85:
        text = _text(rng, size // 2, rare)
        html = "<html><body><p>" + text.replace("\r\n", "</p>\r\n<p>") + "</p></body></html>"
        head.append('Content-Type: multipart/alternative; boundary="alt"')
        body = ("--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + text +
                "\r\n--alt\r\nContent-Type: text/html; charset=utf-8\r\n"
                "Content-Transfer-Encoding: quoted-printable\r\n\r\n" + html +
                "\r\n--alt--")
    else:
        text = _text(rng, 400, rare)
        blob = base64.encodebytes(rng.randbytes(max(100, size * 3 // 4))).decode()
        head.append('Content-Type: multipart/mixed; boundary="mix"')
        body = ("--mix\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + text +
                "\r\n--mix\r\nContent-Type: application/pdf; name=report.pdf\r\n"
                "Content-Disposition: attachment; filename=report.pdf\r\n"
                "Content-Transfer-Encoding: base64\r\n\r\n" + blob.replace("\n", "\r\n") +
                "--mix--")
    return ("\r\n".join(head) + "\r\n\r\n" + body + "\r\n").encode()


def make_messages(count: int, seed: int, small: bool = False) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        size = 1500 if small else int(min(200_000, max(800, rng.lognormvariate(8.4, 1.0))))
        out.append(make_message(rng, i, size))
    return out


# --- a small async IMAP client -------------------------------------------------------------------
class Client:
    def __init__(self) -> None:
        self.n = 0
        self.received = 0

    async def connect(self, port: int) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port,
                                                                 limit=1 << 24)
        await self.reader.readline()

    async def response(self, tag: bytes) -> list[bytes]:
        lines = []
        while True:
            line = await self.reader.readline()
            if not line:
                raise ConnectionError("server closed the connection")
            self.received += len(line)
            while (m := re.search(rb"\{(\d+)\}\r\n$", line)) is not None:
                data = await self.reader.readexactly(int(m.group(1)))
                more = await self.reader.readline()
                self.received += len(data) + len(more)
                line = line + data + more
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError(f"{tag.decode()} failed: {line!r}")
                return lines
            lines.append(line)

    async def cmd(self, text: str | bytes) -> list[bytes]:
        self.n += 1
        tag = b"b%d" % self.n
        data = text.encode() if isinstance(text, str) else text
        self.writer.write(tag + b" " + data + b"\r\n")
        return await self.response(tag)

    async def login(self, user: str = USER) -> None:
        await self.cmd(f'LOGIN "{user}" "{PASSWORD}"')

    async def append_all(self, mailbox: str, messages: list[bytes], window: int = 200) -> None:
        """APPEND with LITERAL+, `window` commands in flight."""
        pending: list[bytes] = []
        for msg in messages:
            self.n += 1
            tag = b"b%d" % self.n
            self.writer.write(tag + f' APPEND "{mailbox}" {{{len(msg)}+}}\r\n'.encode() + msg
                              + b"\r\n")
            pending.append(tag)
            if len(pending) >= window:
                await self.writer.drain()
                await self.response(pending.pop(0))
        await self.writer.drain()
        for tag in pending:
            await self.response(tag)

    async def scram(self, salted: dict, user: str = USER) -> None:
        """AUTHENTICATE SCRAM-SHA-256; the salted password is computed once per salt."""
        nonce = base64.b64encode(os.urandom(12)).decode()
        first_bare = f"n={user},r={nonce}"
        self.writer.write(b"s AUTHENTICATE SCRAM-SHA-256 " +
                          base64.b64encode(("n,," + first_bare).encode()) + b"\r\n")
        server_first = base64.b64decode((await self.reader.readline())[2:]).decode()
        attrs = dict(item.split("=", 1) for item in server_first.split(","))
        key = (attrs["s"], attrs["i"])
        if key not in salted:
            salted[key] = hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(),
                                              base64.b64decode(attrs["s"]), int(attrs["i"]))
        client_key = hmac.new(salted[key], b"Client Key", hashlib.sha256).digest()
        without = f"c=biws,r={attrs['r']}"
        message = f"{first_bare},{server_first},{without}".encode()
        signature = hmac.new(hashlib.sha256(client_key).digest(), message,
                             hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        self.writer.write(base64.b64encode(f"{without},p={base64.b64encode(proof).decode()}"
                                           .encode()) + b"\r\n")
        await self.reader.readline()                  # + server-final
        self.writer.write(b"\r\n")
        line = await self.reader.readline()
        if not line.startswith(b"s OK"):
            raise RuntimeError(f"SCRAM failed: {line!r}")

    def close(self) -> None:
        self.writer.close()


# --- the servers ---------------------------------------------------------------------------------
def mailwright(work: Path, workers: int = 1) -> Mailwright:
    mw = Mailwright(work, USER, extra="[imap]\nallow_plaintext_auth = true\n",
                    workers=workers)
    mw.port = mw.ports["imap"]
    return mw


# --- measurements --------------------------------------------------------------------------------
async def timed(coro) -> float:
    start = time.perf_counter()
    await coro
    return time.perf_counter() - start


async def load(port: int, inbox: list[bytes]) -> float:
    """APPEND the inbox messages; seconds taken."""
    c = Client()
    await c.connect(port)
    await c.login()
    start = time.perf_counter()
    await c.append_all("INBOX", inbox)
    elapsed = time.perf_counter() - start
    c.close()
    return elapsed


async def load_search(port: int, search: list[bytes], connections: int = 4) -> None:
    clients = [Client() for _ in range(connections)]
    for c in clients:
        await c.connect(port)
        await c.login()
    await clients[0].cmd('CREATE "Search"')
    step = -(-len(search) // connections)
    await asyncio.gather(*(c.append_all("Search", search[i * step:(i + 1) * step])
                           for i, c in enumerate(clients)))
    for c in clients:
        c.close()


async def one_run(port: int, count: int) -> dict[str, float]:
    c = Client()
    await c.connect(port)
    await c.login()
    await c.cmd("SELECT INBOX")
    out = {}
    out["fetch_env"] = count / await timed(c.cmd("FETCH 1:* (FLAGS ENVELOPE)"))
    before = c.received
    seconds = await timed(c.cmd("UID FETCH 1:* BODY.PEEK[]"))
    out["fetch_body_mb"] = (c.received - before) / 1e6 / seconds
    start = time.perf_counter()
    for uid in range(1, 2001):
        await c.cmd(f"UID STORE {uid} +FLAGS.SILENT (\\Flagged)")
    out["store"] = 2000 / (time.perf_counter() - start)
    await c.cmd("STORE 1:* -FLAGS.SILENT (\\Flagged)")
    await c.cmd("SELECT Search")
    lines: list[bytes] = []

    async def search():
        lines[:] = await c.cmd(f"SEARCH TEXT {RARE}")
    out["search_s"] = await timed(search())
    out["search_hits"] = len(lines[0].split()) - 2 if lines else 0
    c.close()
    return out


async def mixed(port: int, count: int, clients: int = 8, ops: int = 150) -> float:
    """Each client logs in, selects INBOX, then runs `ops` operations of a mail
    client's mix; the rate counts operations after login."""
    conns = []
    for _ in range(clients):
        c = Client()
        await c.connect(port)
        await c.login()
        await c.cmd("SELECT INBOX")
        conns.append(c)

    async def work(c: Client, seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(ops):
            p = rng.random()
            n = rng.randint(1, count)
            if p < 0.35:
                lo = max(1, n - 20)
                await c.cmd(f"FETCH {lo}:{n} (UID FLAGS ENVELOPE RFC822.SIZE)")
            elif p < 0.55:
                await c.cmd(f"UID FETCH {n} BODY.PEEK[]")
            elif p < 0.75:
                await c.cmd(f"UID STORE {n} {rng.choice('+-')}FLAGS.SILENT (\\Seen)")
            elif p < 0.85:
                await c.cmd(f"UID SEARCH UNSEEN SUBJECT {rng.choice(WORDS)}")
            elif p < 0.95:
                await c.cmd('STATUS "Search" (MESSAGES UNSEEN)')
            else:
                await c.cmd("NOOP")

    start = time.perf_counter()
    await asyncio.gather(*(work(c, i) for i, c in enumerate(conns)))
    elapsed = time.perf_counter() - start
    for c in conns:
        c.close()
    return clients * ops / elapsed


async def idle_connections(mw: Mailwright, count: int) -> tuple[float, float]:
    """A fresh Mailwright's RSS before and with `count` authenticated idle IMAP
    connections (fresh: memory freed by the workloads above would hide the cost)."""
    await asyncio.sleep(1)
    before = tree_rss_mb(mw.proc.pid)
    salted: dict = {}
    conns = []
    for start in range(0, count, 100):
        batch = [Client() for _ in range(min(100, count - start))]
        await asyncio.gather(*(c.connect(mw.port) for c in batch))
        await asyncio.gather(*(c.scram(salted) for c in batch))
        conns += batch
    await asyncio.sleep(2)
    after = tree_rss_mb(mw.proc.pid)
    for c in conns:
        c.close()
    return before, after


def med(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--search", type=int, default=100_000)
    ap.add_argument("--idle", type=int, default=5000)
    ap.add_argument("--workers", type=int, default=1,
                    help="Mailwright worker processes (Dovecot uses a process per client)")
    args = ap.parse_args()
    if not os.path.exists(DOVECOT) or not os.path.exists("/usr/lib/dovecot/imap"):
        sys.exit("Dovecot IMAP not found: run `make bench-deps`")
    raise_fd_limit()
    inbox = make_messages(args.messages, 9051)
    search = make_messages(args.search, 3501, small=True)
    work = Path(tempfile.mkdtemp(prefix="mw-bench-", dir=Path(__file__).parent))
    servers = []
    try:
        print(f"loading {len(inbox)} messages ({sum(map(len, inbox)) / 1e6:.0f} MB) and "
              f"{len(search)} for search into each server ...", flush=True)
        dovecot = Dovecot(work, "imap", {".Search": search},
                          extra="mail_max_userip_connections = 1000\n")
        servers = [mailwright(work, args.workers), dovecot]
        asyncio.run(load_search(servers[0].port, search))
        loads = {s.name: asyncio.run(load(s.port, inbox)) for s in servers}
        # Mailwright indexes the text of a burst once it ends (store/sqlite/
        # textindex.py): the runs measure the server after that, as Dovecot's warm-up
        # measures it with its index built.
        print(f"mailwright's text index caught up {servers[0].settle(600):.1f} s after "
              f"the load", flush=True)
        results: dict[str, list[dict]] = {s.name: [] for s in servers}
        rates: dict[str, list[float]] = {s.name: [] for s in servers}
        for s in servers:                                     # warm-up (Dovecot's caches)
            asyncio.run(one_run(s.port, len(inbox)))
        for run in range(args.runs):
            for s in (servers if run % 2 == 0 else servers[::-1]):
                results[s.name].append(asyncio.run(one_run(s.port, len(inbox))))
                rates[s.name].append(asyncio.run(mixed(s.port, len(inbox))))
        print(f"\nIMAP, {args.runs} alternating runs, medians, mailwright workers = "
              f"{args.workers}; ratio = mailwright / dovecot (for SEARCH: dovecot time / "
              "mailwright time)")
        rows = [("APPEND (msg/s)", {n: len(inbox) / t for n, t in loads.items()}, False),
                ("FETCH 1:* (FLAGS ENVELOPE) msg/s",
                 {n: med([r["fetch_env"] for r in rs]) for n, rs in results.items()}, False),
                ("UID FETCH 1:* BODY.PEEK[] MB/s",
                 {n: med([r["fetch_body_mb"] for r in rs]) for n, rs in results.items()}, False),
                (f"SEARCH TEXT in {len(search)} msgs (s)",
                 {n: med([r["search_s"] for r in rs]) for n, rs in results.items()}, True),
                ("UID STORE round trips (op/s)",
                 {n: med([r["store"] for r in rs]) for n, rs in results.items()}, False),
                ("mixed, 8 clients (op/s)", {n: med(v) for n, v in rates.items()}, False)]
        for label, values, lower_is_better in rows:
            mw, dc = values["mailwright"], values["dovecot"]
            ratio = dc / mw if lower_is_better else mw / dc
            print(f"  {label:<38} mailwright {mw:10.2f}   dovecot {dc:10.2f}   "
                  f"ratio {ratio:5.2f}x")
        hits = {n: rs[0]["search_hits"] for n, rs in results.items()}
        print(f"  SEARCH TEXT hits: {hits}")
        if args.idle:
            (work / "idle").mkdir()
            fresh = mailwright(work / "idle")
            servers.append(fresh)
            before, after = asyncio.run(idle_connections(fresh, args.idle))
            print(f"  mailwright RSS {before:.1f} MB -> {after:.1f} MB with {args.idle} idle "
                  "authenticated IMAP connections")
    finally:
        for s in servers:
            s.proc.terminate()
            s.proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
