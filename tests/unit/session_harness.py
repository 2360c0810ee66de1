"""Drive an SmtpSession directly: bytes in, replies out, over a real SQLite store."""

from __future__ import annotations

import asyncio
import dataclasses
import re

from mailwright.auth.lockout import AuthLockout
from mailwright.auth.logins import Logins
from mailwright.config import parse
from mailwright.events.log import EventLog
from mailwright.net.connection import Action, TLSInfo
from mailwright.smtp.session import Connection, SmtpSession

CONFIG_TEXT = """
hostname = "mail.example.test"
data_dir = "unused"
[[listeners]]
role = "mx"
port = 2525
[auth]
failure_delay = 0.0
max_failures = 3
"""

TLS = TLSInfo("TLSv1.3", "TLS_AES_256_GCM_SHA384", 256)
_REPLY = re.compile(rb"^(\d{3})([ -]|$)(.*)$")


def make_config(**limits):
    cfg = parse(CONFIG_TEXT)
    if limits:
        cfg = dataclasses.replace(cfg, limits=dataclasses.replace(cfg.limits, **limits))
    return cfg


class Harness:
    def __init__(self, store, role: str = "mx", tls: bool = False, config=None,
                 lockout: AuthLockout | None = None, events: EventLog | None = None,
                 pipeline=None):
        self.config = config or make_config()
        self.lockout = lockout or AuthLockout(self.config.auth)
        self.session = SmtpSession(Connection(role, "192.0.2.7", 40000, TLS if tls else None),
                                   self.config, store, Logins(self.lockout),
                                   events or EventLog(None), sleep=_no_sleep,
                                   pipeline=pipeline)
        self.session.greeting()
        self.actions: list[Action] = []

    def send(self, data: bytes | str) -> list[str]:
        """Feed bytes; return the replies as 'code text' strings (last line of each)."""
        if isinstance(data, str):
            data = data.encode()
        out, action = drive(self.session, data)
        self.actions.append(action)
        return parse_replies(out)

    def cmd(self, line: str) -> str:
        replies = self.send(line + "\r\n")
        assert len(replies) == 1, replies
        return replies[0]

    def ehlo(self) -> str:
        return self.cmd("EHLO client.example.net")

    def start_tls(self) -> None:
        assert self.cmd("STARTTLS").startswith("220")
        self.session.tls_started(TLS)


def drive(session, data: bytes) -> tuple[bytes, Action]:
    """Feed bytes to a session and run it as net/connection.py does: process, await
    what must be awaited, hand the answer back, repeat. Returns output and last action."""
    session.receive(data)
    out = bytearray()

    async def run() -> Action:
        while True:
            chunk, action, pending = session.process()
            out.extend(chunk)
            if pending is None:
                return action
            chunk, action = session.complete(await pending)
            out.extend(chunk)
            if action is not Action.NONE:
                return action

    action = asyncio.run(run())
    return bytes(out), action


def parse_replies(raw: bytes) -> list[str]:
    """Split a reply stream into replies; every line must be a valid SMTP reply line."""
    replies, current = [], []
    for line in raw.split(b"\r\n")[:-1]:
        m = _REPLY.match(line)
        assert m, f"invalid reply line {line!r}"
        current.append(m.group(3).decode())
        if m.group(2) == b" ":
            replies.append(f"{m.group(1).decode()} " + "\n".join(current))
            current = []
    assert not current and raw.endswith(b"\r\n") or not raw, f"unterminated reply {raw!r}"
    return replies


def inbox(store, address: str) -> list[bytes]:
    from mailwright.address import parse_mailbox
    return [asyncio.run(store.read_blob(r["blob"]))
            for r in store.mailbox_messages(parse_mailbox(address))]


async def _no_sleep(seconds: float) -> None:
    return None
