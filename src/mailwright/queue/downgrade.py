"""8-bit to 7-bit conversion for peers without 8BITMIME (RFC 6152 §3).

A message whose body holds 8-bit octets may not be sent raw to a server that
did not announce 8BITMIME: each 8-bit MIME leaf is re-encoded, quoted-printable
for text and base64 for anything else. 8-bit octets in the header cannot be
converted without rewriting it (RFC 2047), so such a message is refused instead.
"""

from __future__ import annotations

import email.encoders
import email.policy
import quopri
from email.parser import BytesParser


class ConversionImpossible(Exception):
    pass


def is_8bit(data: bytes) -> bool:
    return any(b > 127 for b in data) if data else False


def to_7bit(content: bytes) -> bytes:
    """The message with every 8-bit body part re-encoded; ConversionImpossible if the
    header itself is 8-bit."""
    end = content.find(b"\r\n\r\n")
    header = content if end < 0 else content[:end]
    if is_8bit(header):
        raise ConversionImpossible("8-bit octets in the message header")
    if not is_8bit(content):
        return content
    msg = BytesParser(policy=email.policy.compat32).parsebytes(content)
    for part in msg.walk():
        if part.is_multipart():
            continue
        if is_8bit(_header_bytes(part)):
            raise ConversionImpossible("8-bit octets in a MIME part header")
        raw = part.get_payload(decode=True) or b""
        if not is_8bit(raw) and part.get("Content-Transfer-Encoding", "7bit").lower() \
                not in ("8bit", "binary"):
            continue
        del part["Content-Transfer-Encoding"]
        if part.get_content_maintype() == "text":
            # quopri rather than email.encoders: spaces stay spaces (quotetabs off).
            part.set_payload(quopri.encodestring(raw).decode("ascii"))
            part["Content-Transfer-Encoding"] = "quoted-printable"
        else:
            part.set_payload(raw)
            email.encoders.encode_base64(part)
    return msg.as_bytes(policy=email.policy.compat32.clone(linesep="\r\n"))


def _header_bytes(part) -> bytes:
    return "".join(f"{k}: {v}\n" for k, v in part.items()).encode("utf-8", "surrogateescape")
