"""Conversions a message may need before it is relayed.

8-bit to 7-bit for peers without 8BITMIME (RFC 6152 §3): a message whose body
holds 8-bit octets may not be sent raw to a server that did not announce
8BITMIME: each 8-bit MIME leaf is re-encoded, quoted-printable for text and
base64 for anything else. 8-bit octets in the header cannot be converted
without rewriting it (RFC 2047), so such a message is refused instead.

Long lines (shorten_lines): we accept lines of any length and deliver them
locally as they came, but a line sent on must not exceed 998 octets plus CRLF
(RFC 5322 §2.1.1, RFC 5321 §4.5.3.1.6: a strict peer refuses the message, or
breaks the line where it likes). A MIME leaf holding such a line is re-encoded
(quoted-printable for text, base64 otherwise: both give lines of at most 76
octets, and decoding gives back the very octets sent to us); a header field
line is folded at whitespace (RFC 5322 §2.2.3: unfolding restores it). Only
those parts change, byte for byte the rest stays; a header line without
whitespace to fold at is left as it is (the peer decides). The session does
this before it signs or seals a relayed copy, so the signatures cover what is
sent (RFC 6376 §5.3 asks signers to encode so); the queue client does it again
for anything still too long (DSNs quoting such a message, older queue entries).
"""

from __future__ import annotations

import email.encoders
import email.policy
import quopri
import re
from email.parser import BytesParser

from ..message.encoding import decode_transfer, encode_transfer
from ..message.structure import Part, parse_structure
from ..net.lines import longest_line

# RFC 5322 §2.1.1: at most 998 characters per line, excluding the CRLF.
MAX_LINE = 998
_CTE_FIELD = re.compile(rb"(?im)^content-transfer-encoding[ \t]*:.*(?:\r?\n[ \t].*)*\r?\n")
_MIME_VERSION = re.compile(rb"(?im)^mime-version[ \t]*:")


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


def has_long_lines(content: bytes) -> bool:
    """A line over MAX_LINE octets (its CRLF not counted)."""
    return longest_line(content, enough=MAX_LINE + 2) > MAX_LINE + 2


def shorten_lines(content: bytes) -> bytes:
    """The message with every line over MAX_LINE octets dealt with as the module
    doc says; the same bytes object when there is none."""
    if not has_long_lines(content):
        return content
    root, _ = parse_structure(content)
    out = bytearray(content)
    # Last part first: what comes before a changed part keeps its offsets.
    for part in reversed(_parts(root)):
        if not part.children and part.end > part.body and \
                has_long_lines(content[part.body:part.end]):
            out[part.start:part.end] = _reencoded(content, part, part is root)
        else:
            out[part.start:part.body] = _folded(content[part.start:part.body])
    return bytes(out)


def _parts(part: Part) -> list[Part]:
    """Every part, in the order they appear in the message."""
    found = [part]
    for child in part.children:
        found += _parts(child)
    return found


def _reencoded(content: bytes, part: Part, top: bool) -> bytes:
    """A leaf (its header and body) with its body in a short-line encoding."""
    raw = content[part.body:part.end]
    decoded = decode_transfer(raw, part.encoding)
    # quoted-printable keeps text readable; line breaks stay line breaks
    encoding = "quoted-printable" if part.ctype.startswith("text/") else "base64"
    # Inside a multipart the CRLF before the next delimiter belongs to it.
    body = encode_transfer(decoded, encoding, raw.endswith(b"\n"))
    header = _folded(_CTE_FIELD.sub(b"", content[part.start:part.body]))
    added = f"Content-Transfer-Encoding: {encoding}\r\n".encode()
    if top and not _MIME_VERSION.search(header):
        added = b"MIME-Version: 1.0\r\n" + added      # RFC 2045 §4
    # The header ends with its empty line; the new fields go just before it.
    blank = 2 if header.endswith(b"\r\n\r\n") or header == b"\r\n" else 0
    return header[:len(header) - blank] + added + header[len(header) - blank:] + body


def _folded(header: bytes) -> bytes:
    """Header lines over MAX_LINE folded at whitespace (RFC 5322 §2.2.3)."""
    if not has_long_lines(header):
        return header
    return b"\r\n".join(_fold(line) for line in header.split(b"\r\n"))


def _fold(line: bytes) -> bytes:
    """The line folded before whitespace into lines of at most MAX_LINE octets; as it
    was if it cannot be (a run of more than MAX_LINE octets without whitespace)."""
    pieces = []
    rest = line
    while len(rest) > MAX_LINE:
        cut = max(rest.rfind(b" ", 1, MAX_LINE + 1), rest.rfind(b"\t", 1, MAX_LINE + 1))
        # a folded line must hold more than whitespace
        if cut <= 0 or not rest[:cut].strip(b" \t"):
            return line
        pieces.append(rest[:cut])
        rest = rest[cut:]
    pieces.append(rest)
    return b"\r\n".join(pieces)
