"""Large messages and long lines, end to end: real swaks, smtplib and a raw BDAT
client against a server process on loopback; read back byte for byte through IMAP
(and POP3).

The size ladder brackets the 1 MiB read high-water mark of net/connection.py and
the 25 MiB default max_message_size: 1 KiB, 1 MiB - 1, 1 MiB + 1, 5 MiB, 24 MiB
and max + 1 (refused with 552 5.3.4, the session going on). Large transfers are
few on purpose (each client path gets some of the sizes, the ladder as a whole
runs through swaks on mx and through BDAT on submission with STARTTLS + AUTH).
"""

from __future__ import annotations

import base64
import email
import email.policy
import imaplib
import os
import poplib
import re
import smtplib
import socket
import ssl
import subprocess
import time
import uuid

import pytest

from ..conftest import PASSWORD, require
from .relaying import relay_pair

KIB, MIB = 1024, 1024 * 1024
MAX = 25 * MIB                    # the default limits.max_message_size
LADDER = [KIB, MIB - 1, MIB + 1, 5 * MIB, 24 * MIB, MAX + 1]
TRACE_FIELDS = {b"return-path", b"received", b"authentication-results"}


def tls_context() -> ssl.SSLContext:
    return ssl._create_unverified_context()


# --- messages -----------------------------------------------------------------------------
def make_message(size: int, sender: str = "sender@remote.test",
                 rcpt: str = "alice@example.test") -> tuple[str, bytes]:
    """A MIME message of exactly `size` octets: a text part with dot-led lines (dot
    stuffing on the wire) and a base64 attachment filling the rest. (token, bytes)"""
    token = uuid.uuid4().hex
    head = (f"From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: size {token}\r\n"
            f"Message-ID: <{token}@client.example.net>\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="b0"\r\n\r\n'
            "--b0\r\nContent-Type: text/plain\r\n\r\n.one leading dot\r\n..two\r\n.\r\n"
            "--b0\r\nContent-Type: application/octet-stream\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n").encode()
    tail = b"--b0--\r\n"
    fill = size - len(head) - len(tail)
    assert fill >= 80, size
    lines, rest = divmod(fill, 78)                      # 76 characters + CRLF
    if 0 < rest < 3:                                    # no room for a line of its own
        lines, rest = lines - 1, rest + 78
    data = base64.b64encode(os.urandom((lines * 76 + rest) * 3 // 4 + 3))
    body = b"".join(data[i * 76:(i + 1) * 76] + b"\r\n" for i in range(lines))
    if rest:
        body += data[-(rest - 2):] + b"\r\n"
    message = head + body + tail
    assert len(message) == size
    return token, message


# --- reading back -------------------------------------------------------------------------
def imap_fetch(server, user: str, token: str) -> bytes:
    with imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"],
                           ssl_context=tls_context()) as imap:
        imap.login(user, PASSWORD)
        imap.select("INBOX", readonly=True)
        typ, found = imap.uid("SEARCH", "SUBJECT", token)
        assert typ == "OK" and found[0], f"{token} not in {user}'s INBOX"
        [uid] = found[0].split()
        typ, data = imap.uid("FETCH", uid, "(BODY.PEEK[])")
        assert typ == "OK"
        return data[0][1]


def assert_delivered_intact(server, user: str, token: str, sent: bytes) -> None:
    """The message as sent, after nothing but the trace fields the server prepends."""
    stored = imap_fetch(server, user, token)
    assert len(stored) >= len(sent)
    assert stored.endswith(sent), f"{token}: stored message differs from the one sent"
    prefix = stored[:len(stored) - len(sent)]
    names = {m.group(1).lower() for m in re.finditer(rb"^([^ \t:]+):", prefix, re.M)}
    assert names <= TRACE_FIELDS, names
    assert prefix.startswith(b"Return-Path: ") and prefix.endswith(b"\r\n")


# --- clients --------------------------------------------------------------------------------
def swaks(server, role: str, path, sender: str, rcpt: str, *extra: str):
    require("swaks")
    return subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{server.ports[role]}", "--helo",
         "client.example.net", "--from", sender, "--to", rcpt, "--data", f"@{path}",
         "--suppress-data", "--timeout", "60", *extra],
        capture_output=True, timeout=180)


def smtplib_data(server, role: str, sender: str, rcpt: str, message: bytes,
                 login: bool) -> tuple[int, bytes]:
    """MAIL (without SIZE, so an oversized message reaches DATA), RCPT, DATA; then
    a NOOP to show the session goes on. The reply to the end of DATA."""
    if role == "submissions":
        conn = smtplib.SMTP_SSL("127.0.0.1", server.ports[role], context=tls_context(),
                                timeout=60)
    else:
        conn = smtplib.SMTP("127.0.0.1", server.ports[role], timeout=60)
    with conn as s:
        s.ehlo("client.example.net")
        if role == "submission":
            s.starttls(context=tls_context())
            s.ehlo("client.example.net")
        if login:
            s.login(sender, PASSWORD)
        assert s.mail(sender)[0] == 250
        assert s.rcpt(rcpt)[0] == 250
        try:
            reply = s.data(message)
        except smtplib.SMTPDataError as e:
            reply = (e.smtp_code, e.smtp_error)
        assert s.noop()[0] == 250
        return reply


class RawSmtp:
    """Just enough SMTP client for BDAT (RFC 3030), which smtplib lacks."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.buf = b""
        assert self.reply()[0] == 220

    def reply(self) -> tuple[int, str]:
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionError("server closed the connection")
                self.buf += data
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode())
            if line[3:4] != b"-":
                return int(line[:3]), "\n".join(lines)

    def cmd(self, line: str) -> tuple[int, str]:
        self.sock.sendall(line.encode() + b"\r\n")
        return self.reply()

    def starttls(self) -> None:
        assert self.cmd("STARTTLS")[0] == 220
        self.sock = tls_context().wrap_socket(self.sock)

    def login(self, user: str) -> None:
        token = base64.b64encode(f"\0{user}\0{PASSWORD}".encode()).decode()
        assert self.cmd(f"AUTH PLAIN {token}")[0] == 235

    def bdat(self, message: bytes, chunk: int = 4 * MIB) -> tuple[int, str]:
        """The message in chunks; the reply to the last one, or to the first refused."""
        for start in range(0, len(message), chunk):
            piece = message[start:start + chunk]
            last = " LAST" if start + chunk >= len(message) else ""
            self.sock.sendall(f"BDAT {len(piece)}{last}\r\n".encode() + piece)
            code, text = self.reply()
            if code != 250 or last:
                return code, text
        raise AssertionError("empty message")

    def close(self) -> None:
        self.cmd("QUIT")
        self.sock.close()


def bdat_send(server, role: str, sender: str, rcpt: str, message: bytes,
              tls: bool, login: bool) -> tuple[int, str]:
    client = RawSmtp(server.ports[role])
    try:
        assert client.cmd("EHLO client.example.net")[0] == 250
        if tls:
            client.starttls()
            assert "CHUNKING" in client.cmd("EHLO client.example.net")[1]
        if login:
            client.login(sender)
        assert client.cmd(f"MAIL FROM:<{sender}>")[0] == 250
        assert client.cmd(f"RCPT TO:<{rcpt}>")[0] == 250
        reply = client.bdat(message)
        assert client.cmd("NOOP")[0] == 250            # the session goes on
        return reply
    finally:
        client.close()


# --- peak memory of the server process --------------------------------------------------------
def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in octets."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0]) * 1024
    return values


def reset_peak(pid: int) -> None:
    with open(f"/proc/{pid}/clear_refs", "w") as f:      # "5": reset VmHWM to VmRSS
        f.write("5")


def test_peak_memory_of_a_24_mib_message_is_about_one_copy(server):
    """Received, checked, traced, parsed and stored, a 24 MiB message costs the server
    about one copy of itself at its peak (it used to be five, ~122 MiB). First in the
    module: the process has not yet kept memory freed after other large messages."""
    size = 24 * MIB
    token, message = make_message(size)
    pid = server.proc.pid
    time.sleep(0.2)                       # earlier deliveries settled
    reset_peak(pid)
    before = memory(pid)
    code, text = smtplib_data(server, "mx", "sender@remote.test", "alice@example.test",
                              message, login=False)
    after = memory(pid)
    assert code == 250, text
    growth = after["VmHWM"] - before["VmRSS"]
    print(f"\nserver RSS {before['VmRSS'] / MIB:.0f} MiB, peak during a 24 MiB message "
          f"{after['VmHWM'] / MIB:.0f} MiB (+{growth / MIB:.0f} MiB)")
    assert growth < 1.6 * size


# --- the ladder -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """One message per size, written once for swaks (--data @file)."""
    directory = tmp_path_factory.mktemp("messages")
    made = {}
    for size in LADDER:
        token, message = make_message(size)
        path = directory / f"{size}.eml"
        path.write_bytes(message[:-2])   # swaks ends the data with CRLF "." CRLF itself
        made[size] = (token, message, path)
    return made


@pytest.mark.parametrize("size", LADDER)
def test_swaks_mx_data_size_ladder(server, files, size):
    token, message, path = files[size]
    started = time.monotonic()
    res = swaks(server, "mx", path, "sender@remote.test", "alice@example.test")
    out = res.stdout.decode(errors="replace")
    assert time.monotonic() - started < 60, "the transfer hung"
    if size > MAX:
        assert "<** 552 5.3.4" in out, out[-2000:]
        assert "<-  221" in out                         # QUIT answered: session went on
        return
    assert res.returncode == 0, out[-2000:]
    assert "<-  250 2.0.0 OK: queued as" in out
    assert_delivered_intact(server, "alice@example.test", token, message)


@pytest.mark.parametrize("size", LADDER)
def test_bdat_submission_starttls_auth_size_ladder(server, size):
    token, message = make_message(size, "bob@example.test", "carol@example.test")
    code, text = bdat_send(server, "submission", "bob@example.test", "carol@example.test",
                           message, tls=True, login=True)
    if size > MAX:
        assert (code, text[:9]) == (552, "552 5.3.4")
        return
    assert code == 250 and "queued as" in text, text
    assert_delivered_intact(server, "carol@example.test", token, message)


@pytest.mark.parametrize("size", [MIB + 1, MAX + 1])
def test_bdat_mx_plain(server, size):
    token, message = make_message(size)
    code, text = bdat_send(server, "mx", "sender@remote.test", "alice@example.test",
                           message, tls=False, login=False)
    if size > MAX:
        assert text.startswith("552 5.3.4")
        return
    assert code == 250, text
    assert_delivered_intact(server, "alice@example.test", token, message)


@pytest.mark.parametrize("role, size", [("mx", MIB - 1), ("mx", 5 * MIB),
                                        ("submission", MIB + 1), ("submission", 24 * MIB),
                                        ("submission", MAX + 1), ("submissions", 5 * MIB)])
def test_smtplib_data(server, role, size):
    login = role != "mx"
    sender = "alice@example.test" if login else "sender@remote.test"
    token, message = make_message(size, sender, "bob@example.test")
    code, text = smtplib_data(server, role, sender, "bob@example.test", message, login)
    if size > MAX:
        assert (code, text[:5]) == (552, b"5.3.4")
        return
    assert code == 250, text
    assert_delivered_intact(server, "bob@example.test", token, message)


def test_swaks_submission_starttls_auth_large(server, files):
    token, message, path = files[5 * MIB]
    message = message.replace(b"sender@remote.test", b"alice@example.test")
    path = path.with_name("submission.eml")
    path.write_bytes(message[:-2])
    res = swaks(server, "submission", path, "alice@example.test", "carol@example.test",
                "--tls", "--auth", "PLAIN", "--auth-user", "alice@example.test",
                "--auth-password", PASSWORD)
    assert res.returncode == 0, res.stdout.decode(errors="replace")[-2000:]
    assert_delivered_intact(server, "carol@example.test", token, message)


# --- the same ladder through IMAP APPEND and POP3 RETR -------------------------------------------
def test_imap_append_and_pop3_retr_size_ladder(server):
    server.add_user("dave@example.test")             # an INBOX no other test writes to
    sizes = [s for s in LADDER if s <= MAX]
    appended = {}
    with imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"],
                           ssl_context=tls_context()) as imap:
        imap.login("dave@example.test", PASSWORD)
        imap.select("Archive")
        for size in sizes:
            token, message = make_message(size, "x@remote.test", "dave@example.test")
            typ, data = imap.append("Archive", None, None, message)
            assert typ == "OK", data
            appended[token] = message
        typ, data = imap.append("Archive", None, None, make_message(MAX + 1)[1])
        assert typ == "NO" and b"TOOBIG" in data[0]
        for token, message in appended.items():
            typ, found = imap.uid("SEARCH", "SUBJECT", token)
            typ, data = imap.uid("FETCH", found[0].split()[0], "(BODY.PEEK[])")
            assert data[0][1] == message                 # APPEND stores it as sent
        # POP3 sees INBOX: the same messages there, then RETR.
        for message in appended.values():
            assert imap.append("INBOX", None, None, message)[0] == "OK"
    pop = poplib.POP3_SSL("127.0.0.1", server.ports["pop3s"], context=tls_context(),
                          timeout=60)
    try:
        pop.user("dave@example.test")
        pop.pass_(PASSWORD)
        count, _ = pop.stat()
        retrieved = [b"\r\n".join(pop.retr(n)[1]) + b"\r\n" for n in range(1, count + 1)]
    finally:
        pop.quit()
    assert retrieved == list(appended.values())      # un-stuffed by poplib: as appended


# --- long lines (RFC 5321 §4.5.3.1.6) ----------------------------------------------------------
def test_998_octet_line_starting_with_a_dot_is_accepted(server):
    """smtplib doubles the dot: 999 octets + CRLF on the wire, 998 + CRLF in the text."""
    token = uuid.uuid4().hex
    line = b"." + b"d" * 997
    message = f"Subject: dot {token}\r\nFrom: <s@remote.test>\r\n\r\n".encode() + line + b"\r\n"
    code, text = smtplib_data(server, "mx", "s@remote.test", "alice@example.test", message,
                              login=False)
    assert code == 250, text
    assert_delivered_intact(server, "alice@example.test", token, message)


def test_long_lines_accepted_and_delivered_intact(server):
    token = uuid.uuid4().hex
    html = b"<table>" + b"<tr><td>cell</td></tr>" * 20_000 + b"</table>"    # 440 KB line
    message = (f"Subject: html {token}\r\nFrom: <s@remote.test>\r\nMIME-Version: 1.0\r\n"
               "Content-Type: text/html; charset=utf-8\r\n\r\n").encode() + html + b"\r\n"
    code, text = smtplib_data(server, "mx", "s@remote.test", "bob@example.test", message,
                              login=False)
    assert code == 250, text
    assert_delivered_intact(server, "bob@example.test", token, message)


def test_relayed_long_lines_are_re_encoded_local_copy_intact(tmp_path):
    """RFC 5322 §2.1.1: what we relay keeps to 998 octets a line. The long-line part is
    re-encoded (quoted-printable) and the long header folded before sending; the local
    copy of the same submission stays as it came."""
    a, b = relay_pair(tmp_path, ("long-a.test", "127.0.0.6"), ("long-b.test", "127.0.0.7"))
    a.start()
    b.start()
    try:
        text = "Grüße, ".encode() + b"x" * 3000 + b" done\r\nshort line\r\n"
        message = (b"From: <alice@long-a.test>\r\nTo: <bob@long-b.test>\r\n"
                   b"Subject: long " + b"word " * 300 + b"\r\n"
                   b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + text)
        with smtplib.SMTP_SSL("127.0.0.6", a.ports["submissions"], context=tls_context(),
                              timeout=30) as s:
            s.login("alice@long-a.test", PASSWORD)
            s.sendmail("alice@long-a.test", ["bob@long-b.test", "alice@long-a.test"],
                       message)
        [local] = a.inbox("alice@long-a.test")
        assert local.endswith(message)                   # byte-exact here
        deadline = time.monotonic() + 20
        while not b.inbox("bob@long-b.test") and time.monotonic() < deadline:
            time.sleep(0.1)
        [relayed] = b.inbox("bob@long-b.test")
        assert max(map(len, relayed.split(b"\r\n"))) <= 998
        parsed = email.message_from_bytes(relayed, policy=email.policy.compat32)
        assert parsed["Content-Transfer-Encoding"] == "quoted-printable"
        assert parsed.get_payload(decode=True) == text   # the same octets, decoded
        assert " ".join(parsed["Subject"].split()) == "long" + " word" * 300
    finally:
        a.stop()
        b.stop()


def test_a_long_text_is_found_by_search_at_once_and_once_indexed(server):
    # A text past store/sqlite/textindex.py DEFERRED_CHARS is stored with a marker
    # only and made later: IMAP SEARCH must find it from the 250 on all the same,
    # then in the index. Quoted-printable UTF-8, as mail clients send long text.
    import sqlite3
    token = uuid.uuid4().hex
    prose = "".join(f"Ligne {i}: cr=C3=A8me br=C3=BBl=C3=A9e, caf=C3=A9 =\r\nnum{i}\r\n"
                    for i in range(2500))
    message = (f"From: <sender@remote.test>\r\nTo: <alice@example.test>\r\n"
               f"Subject: long text {token}\r\nMIME-Version: 1.0\r\n"
               "Content-Type: text/plain; charset=utf-8\r\n"
               "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
               f"{prose}la fin {token}\r\n").encode()
    assert len(message) > 100 * KIB
    assert smtplib_data(server, "mx", "sender@remote.test", "alice@example.test", message,
                        login=False)[0] == 250

    def search(*criteria: str) -> list[bytes]:
        with imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"],
                               ssl_context=tls_context()) as imap:
            imap.login("alice@example.test", PASSWORD)
            imap.select("INBOX", readonly=True)
            typ, found = imap.uid("SEARCH", "CHARSET", "UTF-8", *criteria)
            assert typ == "OK"
            return found[0].split()

    [uid] = search("BODY", f'"fin {token}"')
    # decoded, and folded: "crème brûlée" is found as "CREME BRULEE" (RFC 9051 flexible
    # matching of TEXT and BODY)
    assert uid in search("BODY", '"CREME BRULEE, CAFE num2499"')
    assert uid in search("TEXT", f'"long text {token}"')
    with sqlite3.connect(f"file:{server.data_dir / 'mail.db'}?mode=ro", uri=True) as db:
        deadline = time.monotonic() + 30
        while db.execute("SELECT count(*) FROM message_text_pending").fetchone()[0]:
            assert time.monotonic() < deadline, "the text index did not catch up"
            time.sleep(0.1)
    assert search("BODY", f'"fin {token}"') == [uid]
