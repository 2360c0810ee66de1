"""Content-Transfer-Encoding (RFC 2045 §6): undoing base64 and quoted-printable,
telling 8bit data from binary, and re-encoding binary parts as base64."""

from __future__ import annotations

import base64
import binascii
import re

from .structure import IDENTITY_ENCODINGS, Part, parse_structure

# The encodings we can undo.
KNOWN_ENCODINGS = IDENTITY_ENCODINGS | {"base64", "quoted-printable"}
BASE64_LINE = 76                 # RFC 2045 §6.8: encoded lines of at most 76 characters
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/=]+")
_QP_OCTET = re.compile(rb"=([0-9A-Fa-f]{2})")
# RFC 2045 §2.8: 8bit data has lines of at most 998 octets, CR and LF only
# together as CRLF, and no NUL; anything else is binary (§2.9).
_NOT_8BIT = re.compile(rb"\x00|\r(?!\n)|(?<!\r)\n|[^\r\n]{999}")
_CTE_BINARY = re.compile(rb"^content-transfer-encoding:[ \t]*binary\b", re.I | re.M)


def decode_base64(raw: bytes) -> bytes:
    """RFC 2045 §6.8: characters outside the alphabet (line breaks, spaces, ...) are
    ignored and "=" ends the data; a final quantum of one character (6 bits, no
    whole octet) is dropped."""
    chars = _NOT_BASE64.sub(b"", raw).split(b"=", 1)[0]
    if len(chars) % 4 == 1:
        chars = chars[:-1]
    return binascii.a2b_base64(chars + b"=" * (-len(chars) % 4))


# What binascii.a2b_qp reads otherwise than the rules below (see _a2b_qp_agrees). Each
# pattern starts with a literal, so the regex engine skips to it at C speed.
_QP_EQUALS_PADDING = re.compile(rb"=[= \t]")
_QP_CR_ALONE_OR_PADDED = re.compile(rb"\r(?:(?!\n)|(?<=[ \t]\r))")


def _a2b_qp_agrees(raw: bytes) -> bool:
    """Does binascii.a2b_qp read `raw` as the rules below do? It does not when there
    is whitespace before a line break or at the end (rule 3 padding, which it keeps), a
    CR or LF alone (it keeps them; here they are line breaks), or "=" then padding or
    another "=" (it keeps or halves them). Without these (nearly every real part) its C
    loop gives the same octets, 25 times faster; tests/unit compares the two on random
    input."""
    # No CR alone and as many LFs as CRs: no LF alone either.
    return (raw.count(b"\r") == raw.count(b"\n")
            and _QP_CR_ALONE_OR_PADDED.search(raw) is None
            and _QP_EQUALS_PADDING.search(raw) is None
            and not raw.endswith((b" ", b"\t")))


def decode_quoted_printable(raw: bytes) -> bytes:
    """RFC 2045 §6.7: trailing whitespace on a line is transport padding and is
    deleted (rule 3); "=" at the end of a line, padding allowed after it, is a soft
    line break (rule 5); other line breaks are CRLF; "=XX" is an octet (rule 1),
    and an "=" not followed by two hex digits is kept as it is."""
    if _a2b_qp_agrees(raw):
        return binascii.a2b_qp(raw)
    return _decode_qp_lines(raw)


def _decode_qp_lines(raw: bytes) -> bytes:
    """decode_quoted_printable's rules, a line at a time."""
    out = bytearray()
    lines = raw.split(b"\n")
    for i, line in enumerate(lines):
        line = line.rstrip(b" \t\r")
        soft = line.endswith(b"=")
        out += _QP_OCTET.sub(lambda m: bytes((int(m[1], 16),)), line[:-1] if soft else line)
        if not soft and i < len(lines) - 1:
            out += b"\r\n"
    return bytes(out)


def decode_transfer(raw: bytes, encoding: str) -> bytes:
    """Undo a Content-Transfer-Encoding (RFC 2045 §6); unknown ones stay as they are."""
    if encoding == "base64":
        return decode_base64(raw)
    if encoding == "quoted-printable":
        return decode_quoted_printable(raw)
    return raw


def encode_transfer(data: bytes, encoding: str, final_newline: bool = True) -> bytes:
    """A body in Content-Transfer-Encoding `encoding` (RFC 2045 §6): base64 in lines of
    76 characters, quoted-printable with its line breaks kept (as CRLF), identities as
    they are. Without `final_newline` the last CRLF is left off (inside a multipart the
    CRLF before the next delimiter belongs to the delimiter, RFC 2046 §5.1.1)."""
    if encoding == "base64":
        body = base64.encodebytes(data).replace(b"\n", b"\r\n")
    elif encoding == "quoted-printable":
        body = binascii.b2a_qp(data, istext=True)
        # b2a_qp writes every line break, its soft ones too, as the text's first one
        # is written: as CRLF then (no copy of the body to make), else as LF.
        first = data.find(b"\n")
        if first <= 0 or data[first - 1] != 0x0D:
            body = body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if b"=20\r\n" in body or b"=09\r\n" in body or body.endswith((b"=20", b"=09")):
            body = _fold_overlong(body)
    else:
        return data
    return body if final_newline else body.removesuffix(b"\r\n")


def _fold_overlong(body: bytes) -> bytes:
    """CPython's b2a_qp counts a line's length before it encodes the whitespace ending
    the line (=20, =09), so such a line can reach 77 characters; RFC 2045 §6.7 rule 5
    allows 76. Those lines are cut with a soft line break, never inside an escape."""
    lines = body.split(b"\r\n")
    for i, line in enumerate(lines):
        if len(line) <= BASE64_LINE:
            continue
        parts = []
        while len(line) > BASE64_LINE:
            cut = BASE64_LINE - 1                # room for the "=" of the soft break
            if line[cut - 1:cut] == b"=":
                cut -= 1
            elif line[cut - 2:cut - 1] == b"=":
                cut -= 2
            parts.append(line[:cut] + b"=")
            line = line[cut:]
        lines[i] = b"\r\n".join([*parts, line])
    return b"\r\n".join(lines)


# Quoted-printable written in pieces (a body whose constant stretches are encoded once
# and reused, with new text between them): each piece starts a line of its own and ends
# with a soft line break (RFC 2045 §6.7 rule 5), so the pieces decode to their octets
# joined and no line passes 76 characters wherever they are cut.
SOFT_BREAK = b"=\r\n"
# RFC 2045 §6.7 rule 2: the octets that stand for themselves (not "=", not space or tab,
# which may not end a line).
_QP_LITERAL = bytes(range(33, 61)) + bytes(range(62, 127))


def qp_piece(data: bytes, final_newline: bool = True) -> bytes:
    """`data` in quoted-printable as one piece: its last line leaves room for the "="
    of the soft break that follows (soft_break_after)."""
    body = encode_transfer(data, "quoted-printable", final_newline)
    last = body.rfind(b"\n") + 1
    if len(body) - last > BASE64_LINE - 1:
        # Cut before the last character, or before the last "=XX" (never inside it).
        cut = len(body) - (3 if body[-3:-2] == b"=" else 1)
        body = body[:cut] + SOFT_BREAK + body[cut:]
    return body


def qp_literal_piece(data: bytes) -> bytes:
    """qp_piece, cheaper for data of literal characters only (a URL we wrote): cut into
    lines of 75, the soft break after it included. Other data goes through qp_piece."""
    if data.translate(None, _QP_LITERAL):
        return soft_break_after(qp_piece(data))
    step = BASE64_LINE - 1
    return SOFT_BREAK.join([data[i:i + step] for i in range(0, len(data), step)]) + SOFT_BREAK


def soft_break_after(piece: bytes) -> bytes:
    """The piece with the soft line break that ends it, unless it is empty or ends a
    line already."""
    return piece if not piece or piece.endswith(b"\n") else piece + SOFT_BREAK


def is_8bit(octets: bytes) -> bool:
    return _NOT_8BIT.search(octets) is None


def encode_binary_parts(data: bytes) -> bytes:
    """The message with every binary leaf part re-encoded as base64, nothing lost
    (decoding gives the original octets back). For a message that arrived with
    binary content (NULs, or Content-Transfer-Encoding: binary) and must be handed
    out in a textual form. Most messages are returned unchanged without being
    parsed."""
    if b"\x00" not in data and not _CTE_BINARY.search(data):
        return data
    root, _ = parse_structure(data)
    out = bytearray()
    pos = 0
    for part in _binary_leaves(data, root):
        out += data[pos:part.start]
        out += _base64_header(data[part.start:part.body], part is root)
        body = base64.b64encode(data[part.body:part.end])
        out += b"\r\n".join(body[i:i + BASE64_LINE] for i in range(0, len(body), BASE64_LINE))
        pos = part.end
    return bytes(out + data[pos:]) if pos else data


def _binary_leaves(data: bytes, part: Part) -> list[Part]:
    """Discrete parts (not multipart/*, not message/*: those may only have an
    identity CTE, RFC 2046 §5) that are binary: declared so, or holding NULs. In
    the order they appear."""
    if part.children:
        return [p for child in part.children for p in _binary_leaves(data, child)]
    if part.is_multipart or part.ctype.startswith("message/") or part.body >= part.end:
        return []
    if part.encoding == "binary" or (part.encoding in IDENTITY_ENCODINGS
                                     and b"\x00" in data[part.body:part.end]):
        return [part]
    return []


def _base64_header(header: bytes, top: bool) -> bytes:
    """A part's header block with its Content-Transfer-Encoding field replaced
    by base64 (and, at the top level, a MIME-Version field if it had none)."""
    lines = header.splitlines(keepends=True)
    blank = lines.pop() if lines and lines[-1] in (b"\r\n", b"\n") else b"\r\n"
    kept: list[bytes] = []
    skipping = False
    has_version = False
    for line in lines:
        if line[:1] in (b" ", b"\t"):                  # continuation of the field above
            if not skipping:
                kept.append(line)
            continue
        name = line.split(b":", 1)[0].strip().lower()
        skipping = name == b"content-transfer-encoding"
        has_version = has_version or name == b"mime-version"
        if not skipping:
            kept.append(line)
    if top and not has_version:
        kept.append(b"MIME-Version: 1.0\r\n")
    kept.append(b"Content-Transfer-Encoding: base64\r\n")
    return b"".join(kept) + blank
