"""A message's envelope: the originator, destination and identification fields
(RFC 5322 §3.6) as sent (not decoded), what a message list shows and IMAP's
ENVELOPE (RFC 9051 §7.5.2) carries."""

from __future__ import annotations

from dataclasses import dataclass

from .addresses import Address, parse_addresses
from .headers import Headers

# An address field: None when it is absent or empty, else its address structures
# (which may be none, for a value that holds no address).
AddressField = tuple[Address, ...] | None


@dataclass(frozen=True, slots=True)
class Envelope:
    date: str | None
    subject: str | None
    from_: AddressField
    sender: AddressField
    reply_to: AddressField
    to: AddressField
    cc: AddressField
    bcc: AddressField
    in_reply_to: str | None
    message_id: str | None


def _addresses(headers: Headers, name: str) -> AddressField:
    value = headers.value(name)
    return tuple(parse_addresses(value)) if value else None


def envelope(headers: Headers) -> Envelope:
    return Envelope(
        date=headers.value("Date"),
        subject=headers.value("Subject"),
        from_=_addresses(headers, "From"),
        sender=_addresses(headers, "Sender"),
        reply_to=_addresses(headers, "Reply-To"),
        to=_addresses(headers, "To"),
        cc=_addresses(headers, "Cc"),
        bcc=_addresses(headers, "Bcc"),
        in_reply_to=headers.value("In-Reply-To"),
        message_id=headers.value("Message-ID"),
    )
