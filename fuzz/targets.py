"""The fuzz targets: each takes one input (bytes) and raises on a finding. The first
octet picks a variant (role, TLS, logged in, framer), the second the size of the
pieces the rest is fed in (a network delivers any split); the rest is the input."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from mailwright.address import parse_mailbox
from mailwright.auth.lockout import AuthLockout
from mailwright.auth.logins import Logins
from mailwright.events.log import EventLog
from mailwright.imap.notify import MailboxWatch
from mailwright.imap.parser import CommandFramer, Continue
from mailwright.imap.session import ImapSession
from mailwright.message.meta import parse_message
from mailwright.message.structure import Part, parse_structure
from mailwright.net.connection import Action
from mailwright.net.lines import LineBuffer, LineTooLong
from mailwright.pop3.locks import MaildropLocks
from mailwright.pop3.session import Pop3Session, Shared
from mailwright.smtp.framing import Chunk, CommandLine, Framer, MessageData
from mailwright.store.messages import Delivery, LocalCopy
from tests.unit.conftest import PASSWORD, populated_store
from tests.unit.session_harness import TLS, Harness, drive, make_config

Target = Callable[[bytes], None]
ROLES = ("mx", "submission", "submissions")
MAILBOX_USER = "fuzz@example.test"         # IMAP and POP3 log in as this one
MESSAGES = [b"Subject: one\r\nFrom: A <a@x.test>\r\n\r\nfirst\r\n",
            b"Subject: two\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
            b"--b\r\nContent-Type: text/plain\r\n\r\n.dotted\r\n--b--\r\n",
            b"Subject: three\r\n\r\nno final newline"]


def split(data: bytes) -> tuple[int, int, bytes]:
    """(variant, piece size 1-64, input)"""
    if len(data) < 2:
        return 0, 64, data
    return data[0], data[1] % 64 + 1, data[2:]


def pieces(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


def _mailbox_store(directory: Path):
    store = populated_store(directory)
    asyncio.run(store.add_account(parse_mailbox(MAILBOX_USER), PASSWORD))
    account = asyncio.run(store.account_id(MAILBOX_USER))
    for i, body in enumerate(MESSAGES):
        asyncio.run(store.deliver(Delivery(message_id=f"FUZZ{i}", mail_from="a@x.test",
                                           local=[LocalCopy(account)], local_content=body)))
    return store


def _refill(store) -> None:
    """POP3 QUIT and IMAP EXPUNGE remove messages: put them back when none are left."""
    if not asyncio.run(store.maildrop(MAILBOX_USER)).messages:
        account = asyncio.run(store.account_id(MAILBOX_USER))
        asyncio.run(store.deliver(Delivery(message_id="FUZZ", mail_from="a@x.test",
                                           local=[LocalCopy(account)],
                                           local_content=MESSAGES[1])))


def smtp(workdir: Path) -> Target:
    store = populated_store(workdir)
    config = make_config(max_errors=1000, max_message_size=4000)

    def one(data: bytes) -> None:
        variant, size, stream = split(data)
        role = ROLES[variant % 3]
        h = Harness(store, role=role, tls=role == "submissions" or bool(variant & 4),
                    config=config)
        if variant & 8:
            h.ehlo()
        for piece in pieces(stream, size):
            if h.session.closed:
                break
            h.send(piece)           # session_harness.parse_replies checks every reply
    return one


class SessionLogins:
    """A fresh lockout per session (failed logins of earlier inputs must not lock later
    ones out) and one credential cache for all (a login is argon2 only once)."""

    def __init__(self, config):
        self.config = config
        self.cache = Logins.from_settings(config.auth).cache

    def __call__(self) -> Logins:
        return Logins(AuthLockout(self.config.auth), self.cache)


def run_session(session, stream: bytes, size: int, check: Callable[[bytes], None]) -> None:
    for piece in pieces(stream, size):
        out, action = drive(session, piece)
        check(out)
        if action is Action.CLOSE:
            break


def imap(workdir: Path) -> Target:
    store = _mailbox_store(workdir)
    config = make_config()
    logins = SessionLogins(config)
    watch = MailboxWatch(store)

    def check(out: bytes) -> None:
        # RFC 9051 §2.2.2: whatever was asked, the answer is whole lines.
        assert not out or out.endswith(b"\r\n"), out[-200:]

    def one(data: bytes) -> None:
        variant, size, stream = split(data)
        _refill(store)
        session = ImapSession("192.0.2.9", TLS if variant & 1 else None, config, store,
                              logins(), EventLog(None), watch)
        session.greeting()
        if variant & 2:
            drive(session, f'l LOGIN {MAILBOX_USER} "{PASSWORD}"\r\n'.encode())
            if variant & 4:
                drive(session, b"s SELECT INBOX\r\n")
        run_session(session, stream, size, check)
    return one


def pop3(workdir: Path) -> Target:
    store = _mailbox_store(workdir)
    config = make_config()
    logins = SessionLogins(config)
    shared = Shared(MaildropLocks(workdir / "locks"), {})

    def check(out: bytes) -> None:
        # RFC 1939 §3: every response starts with a status indicator (+OK / -ERR), or
        # is a "+ " continuation of SASL (RFC 5034 §4).
        assert not out or out.startswith((b"+OK", b"-ERR", b"+ ")), out[:200]

    def one(data: bytes) -> None:
        variant, size, stream = split(data)
        _refill(store)
        session = Pop3Session("192.0.2.9", TLS if variant & 1 else None, config, store,
                              logins(), EventLog(None), shared)
        session.greeting()
        if variant & 2:
            drive(session, f"USER {MAILBOX_USER}\r\nPASS {PASSWORD}\r\n".encode())
        run_session(session, stream, size, check)
    return one


def framers(workdir: Path) -> Target:
    def one(data: bytes) -> None:
        variant, size, text = split(data)
        [check_lines, check_data, check_bdat, check_literal][variant % 4](text, size)
    return one


def check_lines(text: bytes, size: int) -> None:
    """Every octet comes out in a line or is still buffered; CRLF and LF end lines."""
    buf = LineBuffer(200)
    lines = []
    for piece in pieces(text, size):
        buf.feed(piece)
        while (line := buf.next_line()) is not None:
            lines.append(line)
    if any(isinstance(line, LineTooLong) for line in lines):
        return
    expected = text.split(b"\n")
    rest = expected.pop()
    assert lines == [e[:-1] if e.endswith(b"\r") else e for e in expected], (lines, text)
    assert bytes(buf.buf) == rest


def check_data(text: bytes, size: int) -> None:
    """RFC 5321 §4.5.2: dot-stuffed text plus CRLF.CRLF comes out as the text."""
    message = b"".join(line + b"\r\n" for line in text.replace(b"\r", b"").split(b"\n"))
    stuffed = b"".join(b"." + line if line.startswith(b".") else line
                       for line in message.splitlines(keepends=True))
    got = bytearray()
    framer = Framer(1000, 1 << 20)
    framer.start_data(got.extend)
    events = []
    for piece in pieces(stuffed + b".\r\nNOOP\r\n", size):
        framer.feed(piece)
        while (event := framer.next_event()) is not None:
            events.append(event)
    assert bytes(got) == message, (bytes(got), message)
    assert events == [MessageData(len(message), False), CommandLine(b"NOOP")], events


def check_bdat(text: bytes, size: int) -> None:
    """RFC 3030 §2: exactly `size` octets of chunk, whatever they contain."""
    got = bytearray()
    framer = Framer(1000, 1 << 20)
    framer.start_bdat(len(text), got.extend)
    events = []
    for piece in pieces(text + b"NOOP\r\n", size):
        framer.feed(piece)
        while (event := framer.next_event()) is not None:
            events.append(event)
    assert bytes(got) == text
    assert events == [Chunk(len(text), True), CommandLine(b"NOOP")], events


def check_literal(text: bytes, size: int) -> None:
    """RFC 9051 §4.3: a synchronizing literal is read whole, a continuation asked for,
    then the line goes on; any bytes in between are just octets."""
    command = b"a APPEND INBOX {%d}\r\n" % len(text) + text + b"\r\n"
    framer = CommandFramer(1000, 1 << 20, 1 << 21)
    out: list = []
    for piece in pieces(command, size):
        framer.feed(piece)
        while (item := framer.next()) is not None:
            out.append(item)
    commands = [item for item in out if isinstance(item, bytes)]
    assert commands == [command], out
    assert all(isinstance(item, bytes | Continue) for item in out), out
    # The same octets raw: whatever the framer makes of them, it does not fail.
    raw = CommandFramer(100, 1000, 2000)
    for piece in pieces(text, size):
        raw.feed(piece)
        while raw.next() is not None:
            pass


def mime(workdir: Path) -> Target:
    return check_mime


def check_mime(data: bytes) -> None:
    part, _ = parse_structure(data)
    _check_tree(part, 0, len(data))
    parse_message(data)            # envelope, body structure, keys: all from the tree


def _check_tree(part: Part, lo: int, hi: int) -> None:
    assert lo <= part.start <= part.body <= part.end <= hi, (part, lo, hi)
    for child in part.children:
        _check_tree(child, part.body, part.end)


TARGETS: dict[str, Callable[[Path], Target]] = {
    "smtp": smtp, "imap": imap, "pop3": pop3, "framers": framers, "mime": mime}


def build(name: str) -> Target:
    return TARGETS[name](Path(tempfile.mkdtemp(prefix=f"mw-fuzz-{name}-")))
