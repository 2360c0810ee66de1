"""Adding a message: stored once, referenced by every local copy and the queue.

Which copies a message gets and into which mailbox each goes is decided before
(delivery/recipients.py, delivery/local.py); the store writes what it is told,
durably, in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from .blobs import Content, Spool
from .queue import RemoteRecipient

INBOX = "INBOX"


@dataclass(frozen=True)
class LocalCopy:
    """One account's copy: into the first of `mailboxes` the account has."""
    account_id: int
    mailboxes: tuple[str, ...] = (INBOX,)


@dataclass
class Delivery:
    """One accepted message for local copies and/or the queue."""
    message_id: str
    mail_from: str                               # '' for <>
    local: list[LocalCopy] = field(default_factory=list)
    local_content: Content = b""                 # with Return-Path (RFC 5321 §4.4)
    remote: list[RemoteRecipient] = field(default_factory=list)
    relay_content: Content = b""                 # without Return-Path
    body: str | None = None
    smtputf8: bool = False
    ret: str | None = None
    envid: str | None = None
    sender_account: str | None = None
    tag: str | None = None                       # kept with queued mail for its events


class MessageStore(Protocol):
    def spool(self) -> Spool:
        """Where a message being received goes as it arrives (a store with files
        spills large ones to a temporary file next to its blobs)."""
        ...

    async def deliver(self, delivery: Delivery) -> None:
        """Returns once content and metadata are durable (fsynced, committed)."""
        ...

    async def read_blob(self, digest: str) -> bytes:
        """A stored message's octets (a backend reads large ones off the loop)."""
        ...

    async def read_blobs(self, digests: list[str]) -> dict[str, bytes]:
        """The octets of those of several stored messages that the backend reads
        together cheaply (small ones: one query for many), by digest; the others are
        left out, for read_blob one at a time (their size is not bounded)."""
        ...
