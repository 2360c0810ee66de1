"""A message from structured fields (the HTTP API's send): RFC 5322 header fields and a
MIME body (RFC 2045-2049) built by the standard library's email package.

The shape follows the content: text or html alone is a single text/plain or text/html
part; both are multipart/alternative with the plain text first (RFC 2046 §5.1.4: the
last part is the preferred one); attachments make a multipart/mixed around that. Bodies
are 7-bit (quoted-printable or base64 where needed), so the message passes every relay
unchanged; header fields are RFC 2047/2231-encoded, or UTF-8 when `utf8` (RFC 6532,
needed for non-ASCII local parts). Bcc never appears: blind recipients are envelope
recipients only (RFC 5322 §3.6.3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from email import policy
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage

# Lines at most 78 characters, CRLF (policy.SMTP); bodies 7-bit (see above).
_ASCII = policy.SMTP.clone(cte_type="7bit")
_UTF8 = policy.SMTPUTF8.clone(cte_type="7bit")


@dataclass(frozen=True)
class Part:
    """An attachment, decoded: its octets are sent base64-encoded, byte-exact."""
    filename: str
    maintype: str
    subtype: str
    data: bytes


@dataclass(frozen=True)
class Fields:
    """What the header says. Date and Message-ID are given, not made here, so the
    caller decides them (the submission time, an id naming our host)."""
    sender: HeaderAddress                 # From
    to: Sequence[HeaderAddress]
    cc: Sequence[HeaderAddress]
    subject: str
    date: str                             # RFC 5322 §3.3 date-time
    message_id: str                       # RFC 5322 §3.6.4 msg-id, "<...>"
    extra: Sequence[tuple[str, str]] = ()  # further fields, checked by the caller


def compose(fields: Fields, text: str | None, html: str | None,
            attachments: Sequence[Part] = (), utf8: bool = False) -> bytes:
    """The message as sent: CRLF line ends, ready for the submission pipeline."""
    msg = EmailMessage(policy=_UTF8 if utf8 else _ASCII)
    msg["From"] = fields.sender
    if fields.to:
        msg["To"] = fields.to
    if fields.cc:
        msg["Cc"] = fields.cc
    if fields.subject:
        msg["Subject"] = fields.subject
    msg["Date"] = fields.date
    msg["Message-ID"] = fields.message_id
    for name, value in fields.extra:
        msg[name] = value
    if html is not None and text is None:
        msg.set_content(html, subtype="html")
    else:
        msg.set_content(text or "")
        if html is not None:
            msg.add_alternative(html, subtype="html")
    for part in attachments:
        msg.add_attachment(part.data, maintype=part.maintype, subtype=part.subtype,
                           filename=part.filename)
    # The email package repeats MIME-Version in the parts it makes; it belongs in the
    # message's header only (RFC 2045 §4).
    for sub in msg.walk():
        if sub is not msg:
            del sub["MIME-Version"]
    return msg.as_bytes()
