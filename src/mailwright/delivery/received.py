"""A received message: what a session hands to the delivery pipeline.

It holds the envelope (RFC 5321 §2.3.1), the facts of the connection it came over, and
the content: bytes, or a Spooled message whose body stays in its spool file. Nothing
here copies the content; the stages prepend header fields to it (`fields + content`,
which for a Spooled message copies only the header block: store/blobs.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..address import Address
from ..net.connection import TLSInfo
from ..store.blobs import Content
from .recipients import Target


@dataclass
class Recipient:
    """One RCPT TO and where it ends up after alias expansion."""
    address: Address
    targets: list[Target]
    notify: str | None = None            # RFC 3461 §4.1 NOTIFY=
    orcpt: str | None = None             # RFC 3461 §4.2 ORCPT=, "type;address"
    junk: bool = False                   # local copies go to Junk (the inbound checks say so)


@dataclass
class Envelope:
    mail_from: Address | None            # None: the null reverse-path <>
    body: str | None = None              # RFC 6152 BODY=
    smtputf8: bool = False               # RFC 6531 §3.4 SMTPUTF8
    ret: str | None = None               # RFC 3461 §4.3 RET=
    envid: str | None = None             # RFC 3461 §4.4 ENVID=
    recipients: list[Recipient] = field(default_factory=list)
    size: int = 0                        # RFC 1870 SIZE= as declared (0: not given)

    @property
    def reverse_path(self) -> str:
        return str(self.mail_from) if self.mail_from else ""


@dataclass(frozen=True)
class Client:
    """Who handed the message over, and how: for trace fields, checks and events."""
    session_id: str                      # the session's id in events
    ip: str
    helo: str                            # the EHLO/HELO argument ("" if none)
    esmtp: bool                          # EHLO rather than HELO
    tls: TLSInfo | None
    account: str | None                  # the authenticated identity (RFC 4954), if any
    role: str                            # the listener: mx | submission | submissions


@dataclass
class ReceivedMessage:
    """One message on its way through the pipeline. The stages fill in the fields below
    `long_lines`; the store stage assembles the copies from them (local_copy,
    relay_copy), so every prefix lands where RFC 5321 §4.4 and RFC 8617 put it."""
    id: str                              # the queue id, time-ordered ("queued as <id>")
    received_at: float                   # end of DATA / BDAT LAST (the Received date)
    envelope: Envelope
    client: Client
    content: Content                     # header + body; checks and rewrites edit it
    long_lines: bool = False             # a line over 998 octets (RFC 5322 §2.1.1)
    tag: str | None = None               # the sender's label (HTTP API), on its events
    campaign: bool = False               # the sender asked for tracking (issue 17: the
    #                                      API's campaign field, a key's campaigns flag)
    checked: bool = False                # inbound checks ran: our verdict is in the header
    trace: bytes = b""                   # Received (RFC 5321 §4.4), above every copy
    return_path: bytes = b""             # Return-Path, above local copies (RFC 5321 §4.4)
    signature: bytes = b""               # DKIM-Signature over content (RFC 6376)
    relay_text: Content | None = None    # relayed copies' text when content cannot go as is
    relay_signature: bytes = b""         # DKIM-Signature over relay_text
    relay_seal: bytes = b""              # ARC set above the relayed copy (RFC 8617 §4.1)
    # remote recipients not sent to (delivery/stages/suppress.py): lookup key -> reason;
    # one dict for a message and its campaign copies (dataclasses.replace shares it)
    suppressed: dict[str, str] = field(default_factory=dict)

    def local_copy(self) -> Content:
        """What local mailboxes store: Return-Path, Received, signature, content."""
        return self.return_path + self.trace + self.signature + self.content

    def relay_copy(self) -> Content:
        """What the queue sends on: ARC set, Received, signature, text."""
        if self.relay_text is None:
            return self.relay_seal + self.trace + self.signature + self.content
        return self.relay_seal + self.trace + self.relay_signature + self.relay_text
