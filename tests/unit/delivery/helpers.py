"""Messages, recorders and fakes for driving delivery stages one at a time."""

from __future__ import annotations

import asyncio
import json

from mailwright.address import parse_mailbox
from mailwright.delivery.received import Client, Envelope, ReceivedMessage, Recipient
from mailwright.delivery.recipients import Target
from mailwright.events.log import EventLog
from mailwright.net.connection import TLSInfo
from mailwright.store.blobs import Spool

TLS = TLSInfo("TLSv1.3", "TLS_AES_256_GCM_SHA384", 256)
TEXT = b"From: a@origin.test\r\nSubject: hi\r\n\r\nbody\r\n"


def local(address: str, account: int, **kw) -> Recipient:
    return Recipient(parse_mailbox(address), [Target(address, account)], **kw)


def remote(address: str, **kw) -> Recipient:
    return Recipient(parse_mailbox(address), [Target(address)], **kw)


def message(*recipients: Recipient, content=TEXT, mail_from: str | None = "a@origin.test",
            account: str | None = None, tls: TLSInfo | None = None, helo="client.test",
            ip="192.0.2.7", esmtp=True, smtputf8=False, long_lines=False) -> ReceivedMessage:
    envelope = Envelope(parse_mailbox(mail_from) if mail_from else None, smtputf8=smtputf8,
                        recipients=list(recipients or [local("bob@example.test", 1)]))
    client = Client("S1", ip, helo, esmtp, tls, account,
                    "submission" if account else "mx")
    return ReceivedMessage("M1", 1_700_000_000.0, envelope, client, content,
                           long_lines=long_lines)


def spooled(directory, text: bytes):
    """text as a session receives a large message: header in memory, body in a file."""
    spool = Spool(directory, memory=16)
    spool.write(text)
    return spool.content()


def run(stage, msg: ReceivedMessage) -> ReceivedMessage:
    asyncio.run(stage.run(msg))
    return msg


class Events:
    """An EventLog over a recorder: `kinds` and `data` of what was emitted."""

    def __init__(self) -> None:
        self.rows: list[tuple] = []
        self.log = EventLog(self)

    def record_event(self, row) -> None:
        self.rows.append((row.type, row.session, row.message_id,
                          json.loads(json.dumps(row.data))))

    @property
    def kinds(self) -> list[str]:
        return [row[0] for row in self.rows]

    def data(self, kind: str) -> dict:
        return next(row[3] for row in self.rows if row[0] == kind)
