"""Parse a message once, at delivery: what IMAP needs without reading it again.

From the raw octets we compute the MIME part tree with byte offsets (for
BODY[section] and BINARY[section]), the rendered ENVELOPE, BODY and BODYSTRUCTURE
(RFC 9051 §7.5.2), the header block, sort and search keys (RFC 5256), and the
decoded text of the message (encoded words, quoted-printable/base64 and charsets
undone; HTML reduced to text) for the full-text index.

The byte-level splitting (header/body, multipart boundaries, RFC 2046 §5.1.1) is
ours: IMAP needs exact offsets, sizes and line counts that the email package does
not keep. Header semantics (parameters, RFC 2231, encoded words, dates) come from
the standard library.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import email.header
import email.message
import email.utils
import html
import json
import re
from dataclasses import dataclass, field
from typing import NamedTuple

from . import render, threads

MAX_DEPTH = 16            # nested multiparts / messages: deeper ones stay opaque
MAX_PARTS = 500
MAX_TEXT = 256 * 1024     # decoded text per message kept for the full-text index
_HEADER_END = re.compile(rb"\r?\n\r?\n")


@dataclass
class Part:
    start: int                     # first octet of the part's header
    body: int                      # first octet of its body
    end: int                       # one past its last octet
    ctype: str = "text/plain"
    encoding: str = "7bit"
    children: list[Part] = field(default_factory=list)  # multipart parts, or the
    # one encapsulated message of a message/rfc822 part
    headers: email.message.Message | None = field(default=None, repr=False, compare=False)

    def to_list(self) -> list:
        return [self.start, self.body, self.end, self.ctype, self.encoding,
                [c.to_list() for c in self.children]]

    @classmethod
    def from_list(cls, data: list) -> Part:
        return cls(data[0], data[1], data[2], data[3], data[4],
                   [cls.from_list(c) for c in data[5]])

    @property
    def is_multipart(self) -> bool:
        return self.ctype.startswith("multipart/")

    @property
    def is_message(self) -> bool:
        return self.ctype in ("message/rfc822", "message/global") and bool(self.children)


@dataclass
class MessageMeta:
    structure: Part
    envelope: bytes
    body: bytes                     # FETCH BODY (non-extensible)
    bodystructure: bytes
    header: bytes                   # the top-level header block, blank line included
    sent: float | None              # Date: header, for SORT DATE
    sent_day: int | None            # its date as written, YYYYMMDD, for SENTBEFORE/ON/SINCE
    subject: str                    # decoded
    base_subject: str               # RFC 5256 §2.1, collated (threads.sort_subject)
    from_: str                      # what SEARCH FROM matches (_address_text)
    to: str
    cc: str
    bcc: str
    sort_from: str                  # RFC 5256 §3: first addr-mailbox, collated
    sort_to: str
    sort_cc: str
    display_from: str               # RFC 5957 §3: first address's display value, collated
    display_to: str
    message_id: str
    in_reply_to: str
    references: str
    header_text: str                # every header field decoded, for SEARCH TEXT
    text: str                       # decoded body text

    def structure_json(self) -> str:
        return json.dumps(self.structure.to_list(), separators=(",", ":"))


# --- splitting ----------------------------------------------------------------------------
def _header_end(data: bytes, start: int, end: int) -> int:
    """Offset of the body: after the blank line ending the header, or `end`."""
    if data.startswith(b"\r\n", start) or data.startswith(b"\n", start):
        return start + (2 if data[start] == 0x0D else 1)
    m = _HEADER_END.search(data, start, end)
    return m.end() if m else end


class Headers(email.message.Message):
    """A compat32 Message (for its parameter and charset helpers) that also keeps
    each field's first value by lowercased name: one dict lookup instead of a
    scan of every field per get()."""

    def __init__(self) -> None:
        super().__init__()
        self.first: dict[str, str] = {}

    def add(self, name: str, value: str) -> None:
        self.set_raw(name, value)
        self.first.setdefault(name.lower(), value)

    def get(self, name, failobj=None):
        """The field's value unfolded (RFC 5322 §2.2.3: a CRLF before WSP is removed).
        The email package's parameter helpers read values through here, so a folded
        Content-Type yields `boundary="foo bar"`, not a boundary with a line break
        in it. Unfolded on read, not at parse time: most folded fields (Received,
        DKIM-Signature) are never read."""
        value = super().get(name, failobj)
        if isinstance(value, str) and "\n" in value:
            value = _unfold(value)
        return value


_FOLD = re.compile(r"\r?\n(?=[ \t])")


def _unfold(value: str) -> str:
    return _FOLD.sub("", value)


def parse_headers(data: bytes, start: int, body: int) -> Headers:
    """The header fields of data[start:body], split here: several times cheaper
    than the email package's feed parser."""
    msg = Headers()
    name = None
    value: list[str] = []
    for line in data[start:body].decode("utf-8", "replace").splitlines(True):
        if line[:1] in (" ", "\t") and name is not None:
            value.append(line)
            continue
        if name is not None:
            msg.add(name, "".join(value).rstrip("\r\n"))
        name, sep, rest = line.partition(":")
        name = name.rstrip()
        if not sep or not name or " " in name or "\t" in name:   # RFC 5322 §2.2 ftext
            name = None
            continue
        value = [rest.lstrip(" \t")]
    if name is not None:
        msg.add(name, "".join(value).rstrip("\r\n"))
    return msg


def part_headers(data: bytes, part: Part) -> Headers:
    if part.headers is None:
        part.headers = parse_headers(data, part.start, part.body)
    return part.headers


def _mechanism(value: str | None) -> str:
    """RFC 2045 §6.1: the Content-Transfer-Encoding token, case-insensitive, with
    comments around it dropped; 7bit when the field is absent (§6.1) or empty."""
    words = re.sub(r"\([^()]*\)", " ", value or "").split()
    return words[0].lower() if words else "7bit"


def parse_structure(data: bytes, start: int = 0, end: int | None = None,
                    default: str = "text/plain", depth: int = 0,
                    count: list[int] | None = None) -> tuple[Part, email.message.Message]:
    end = len(data) if end is None else end
    count = count if count is not None else [0]
    count[0] += 1
    body = _header_end(data, start, end)
    headers = parse_headers(data, start, body)
    ctype = headers.get_content_type() if headers.get("Content-Type") else default
    if ctype == "text/plain" and headers.get("Content-Type") is None:
        ctype = default
    encoding = _mechanism(headers.get("Content-Transfer-Encoding"))
    part = Part(start, body, end, ctype, encoding, headers=headers)
    if depth >= MAX_DEPTH or count[0] > MAX_PARTS:
        return part, headers
    if ctype.startswith("multipart/"):
        boundary = headers.get_param("boundary")
        if isinstance(boundary, tuple):
            boundary = email.utils.collapse_rfc2231_value(boundary)
        if boundary:
            sub_default = "message/rfc822" if ctype == "multipart/digest" else "text/plain"
            for s, e in _split_multipart(data, body, end, boundary.encode("utf-8", "replace")):
                child, _ = parse_structure(data, s, e, sub_default, depth + 1, count)
                part.children.append(child)
    elif ctype in ("message/rfc822", "message/global") and encoding in ("7bit", "8bit",
                                                                          "binary"):
        inner, _ = parse_structure(data, body, end, "text/plain", depth + 1, count)
        part.children.append(inner)
    return part, headers


def _split_multipart(data: bytes, start: int, end: int, boundary: bytes
                     ) -> list[tuple[int, int]]:
    """Body parts between delimiter lines (RFC 2046 §5.1.1): the CRLF before a
    delimiter belongs to the delimiter, not to the part."""
    delim = b"--" + boundary
    parts = []
    pos = start
    part_start = None
    while pos < end:
        i = data.find(delim, pos, end)
        if i < 0:
            break
        line_end = data.find(b"\n", i, end)
        line_end = end if line_end < 0 else line_end + 1
        closing = data.startswith(b"--", i + len(delim))
        after = i + len(delim) + (2 if closing else 0)
        if (i != start and data[i - 1:i] != b"\n") or \
                data[after:line_end].strip(b" \t\r\n"):
            # Not at a line start, or more than transport padding follows: a line
            # such as "--foobar" is content, not a delimiter for boundary "foo".
            pos = i + len(delim)
            continue
        if part_start is not None:
            stop = i
            if stop > part_start and data[stop - 1:stop] == b"\n":
                stop -= 2 if data[stop - 2:stop] == b"\r\n" else 1
            parts.append((part_start, max(part_start, stop)))
        if closing:
            return parts
        part_start = line_end
        pos = line_end
    if part_start is not None and part_start < end:
        parts.append((part_start, end))          # no closing delimiter: take the rest
    return parts


# --- addresses (RFC 5322 §3.4, as RFC 9051 §7.5.2 ENVELOPE wants them) ---------------------
_ADDR_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|\((?:[^()\\]|\\.)*\)|<[^>]*>|[,:;]|[^\s",:;<(]+')


class Address(NamedTuple):
    """One item of an address list, as RFC 9051 §7.5.2 describes an address
    structure. A group is its start marker (group=True, name = the group's
    phrase), its members, then an end marker (group=True, name None)."""
    name: str | None                   # display name
    route: str | None                  # at-domain-list of an obs-route: "@a,@b"
    mailbox: str | None                # local part
    host: str | None
    group: bool = False


def _unquote(phrase: str) -> str:
    if len(phrase) >= 2 and phrase.startswith('"') and phrase.endswith('"'):
        return re.sub(r"\\(.)", r"\1", phrase[1:-1])
    return phrase


def parse_addresses(value: str) -> list[Address]:
    """An RFC 5322 §3.4 address list (groups, obs-route, comments) as address
    structures."""
    out: list[Address] = []
    words: list[str] = []
    angle: str | None = None
    comment: str | None = None
    in_group = False

    def flush() -> None:
        nonlocal angle, comment
        if angle is not None:
            name = _unquote(" ".join(words)) or None
            route, _, spec = angle.rpartition(":")     # RFC 5322 §4.4 obs-route
        elif words:
            # "user@host (Real Name)": with no display name, the comment after a
            # bare addr-spec is the only name given (the RFC 822 era's way of
            # writing one), so it is the display name.
            name, route, spec = comment, "", "".join(words)
        else:
            name = None
        if angle is not None or words:
            local, _, host = spec.rpartition("@") if "@" in spec else (spec, "", "")
            out.append(Address(name, route or None, local or None, host or None))
        words.clear()
        angle = comment = None

    for token in _ADDR_TOKENS.findall(value):
        if token.startswith("("):
            comment = re.sub(r"\\(.)", r"\1", token[1:-1]).strip() or None
        elif token.startswith("<"):
            angle = token[1:-1].strip()
        elif token == ",":
            flush()
        elif token == ":" and not in_group and angle is None:
            out.append(Address(_unquote(" ".join(words)), None, None, None, True))
            words.clear()
            comment = None
            in_group = True
        elif token == ";" and in_group:
            flush()
            out.append(Address(None, None, None, None, True))
            in_group = False
        else:
            words.append(token)
    flush()
    if in_group:
        out.append(Address(None, None, None, None, True))
    return out


def _address_list(value: str | None) -> bytes:
    if not value:
        return b"NIL"
    items = []
    for a in parse_addresses(value):
        if a.group:
            # RFC 9051 §7.5.2: group start (NIL NIL name NIL), group end all NIL
            items.append(b"(NIL NIL " + render.string(a.name, False) + b" NIL)")
        else:
            items.append(render.paren((render.string(a.name, False),
                                       render.string(a.route, False),
                                       render.string(a.mailbox, False),
                                       render.string(a.host or "", False))))
    return render.paren(items) if items else b"NIL"


def _raw(headers: Headers, name: str) -> str | None:
    value = headers.first.get(name.lower())
    if value is None:
        return None
    if "\n" in value:                                  # folded: unfold (RFC 5322 §2.2.3)
        value = _unfold(value)
    return value.strip()


def envelope(headers: email.message.Message) -> bytes:
    """RFC 9051 §7.5.2 ENVELOPE: header values as sent (not decoded), Sender and
    Reply-To defaulting to From."""
    from_ = _raw(headers, "From")
    fields = [
        render.string(_raw(headers, "Date"), False),
        render.string(_raw(headers, "Subject"), False),
        _address_list(from_),
        _address_list(_raw(headers, "Sender") or from_),
        _address_list(_raw(headers, "Reply-To") or from_),
        _address_list(_raw(headers, "To")),
        _address_list(_raw(headers, "Cc")),
        _address_list(_raw(headers, "Bcc")),
        render.string(_raw(headers, "In-Reply-To"), False),
        render.string(_raw(headers, "Message-ID"), False),
    ]
    return render.paren(fields)


# --- BODY / BODYSTRUCTURE (RFC 9051 §7.5.2) -------------------------------------------------
def _params(headers: email.message.Message, header: str) -> bytes:
    params = headers.get_params(header=header) or []
    items = []
    for i, (key, value) in enumerate(params):
        if i == 0:
            continue                                   # the type/subtype or disposition
        if isinstance(value, tuple):
            value = email.utils.collapse_rfc2231_value(value)
        items += [render.string(key.upper() if key.islower() else key, False),
                  render.string(str(value), False)]
    return render.paren(items) if items else b"NIL"


def _disposition(headers: email.message.Message) -> bytes:
    value = headers.get("Content-Disposition")
    if not value:
        return b"NIL"
    kind = str(value).split(";")[0].strip()
    return b"(" + render.string(kind, False) + b" " + _params(headers, "content-disposition") \
        + b")"


def _lines(data: bytes, part: Part) -> int:
    n = data.count(b"\n", part.body, part.end)
    if part.end > part.body and data[part.end - 1:part.end] != b"\n":
        n += 1
    return n


def body_structure(data: bytes, part: Part, extensible: bool) -> bytes:
    headers = part_headers(data, part)
    main, _, sub = part.ctype.partition("/")
    if part.is_multipart and part.children:
        kids = b"".join(body_structure(data, c, extensible) for c in part.children)
        out = [kids, render.string(sub.upper(), False)]
        if extensible:
            out += [_params(headers, "content-type"), _disposition(headers),
                    render.string(_raw(headers, "Content-Language"), False),
                    render.string(_raw(headers, "Content-Location"), False)]
        return b"(" + b" ".join(out) + b")"
    if part.is_multipart:                      # no boundary or no parts: RFC 2046 §5.1.7
        main, sub = "text", "plain"
    out = [render.string(main.upper(), False), render.string(sub.upper(), False),
           _params(headers, "content-type") if headers.get("Content-Type") else
           b'("CHARSET" "US-ASCII")',
           render.string(_raw(headers, "Content-ID"), False),
           render.string(_raw(headers, "Content-Description"), False),
           render.string(part.encoding.upper(), False),
           str(part.end - part.body).encode()]
    if part.is_message:
        inner = part.children[0]
        out += [envelope(part_headers(data, inner)),
                body_structure(data, inner, extensible), str(_lines(data, part)).encode()]
    elif main == "text":
        out.append(str(_lines(data, part)).encode())
    if extensible:
        out += [render.string(_raw(headers, "Content-MD5"), False), _disposition(headers),
                render.string(_raw(headers, "Content-Language"), False),
                render.string(_raw(headers, "Content-Location"), False)]
    return b"(" + b" ".join(out) + b")"


# --- decoding --------------------------------------------------------------------------------
def decode_words(value: str | None) -> str:
    """RFC 2047 encoded words to text."""
    if not value or "=?" not in value:
        return value or ""
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (UnicodeError, LookupError, binascii.Error, ValueError):
        return value


# RFC 2045 §6: the encodings we can undo. 7bit, 8bit and binary are identities
# (they only name the domain of the data).
IDENTITY_ENCODINGS = frozenset({"7bit", "8bit", "binary"})
KNOWN_ENCODINGS = IDENTITY_ENCODINGS | {"base64", "quoted-printable"}
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/=]+")
_QP_OCTET = re.compile(rb"=([0-9A-Fa-f]{2})")


def decode_base64(raw: bytes) -> bytes:
    """RFC 2045 §6.8: characters outside the alphabet (line breaks, spaces, ...) are
    ignored and "=" ends the data; a final quantum of one character (6 bits, no
    whole octet) is dropped."""
    chars = _NOT_BASE64.sub(b"", raw).split(b"=", 1)[0]
    if len(chars) % 4 == 1:
        chars = chars[:-1]
    return binascii.a2b_base64(chars + b"=" * (-len(chars) % 4))


def decode_quoted_printable(raw: bytes) -> bytes:
    """RFC 2045 §6.7: trailing whitespace on a line is transport padding and is
    deleted (rule 3); "=" at the end of a line, padding allowed after it, is a soft
    line break (rule 5); other line breaks are CRLF; "=XX" is an octet (rule 1),
    and an "=" not followed by two hex digits is kept as it is."""
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


# RFC 2045 §2.8: 8bit data has lines of at most 998 octets, CR and LF only
# together as CRLF, and no NUL; anything else is binary (§2.9).
_NOT_8BIT = re.compile(rb"\x00|\r(?!\n)|(?<!\r)\n|[^\r\n]{999}")


def is_8bit(octets: bytes) -> bool:
    return _NOT_8BIT.search(octets) is None


# --- binary content at APPEND (RFC 3516 §4.4) ----------------------------------------------
_CTE_BINARY = re.compile(rb"^content-transfer-encoding:[ \t]*binary\b", re.I | re.M)
BASE64_LINE = 76                 # RFC 2045 §6.8: encoded lines of at most 76 characters


def encode_binary_parts(data: bytes) -> bytes:
    """The message with every binary leaf part re-encoded as base64. A client may
    APPEND binary content (a literal8 with NULs, or Content-Transfer-Encoding:
    binary); BODY[...] must then hand it out transfer-encoded into a textual
    form (RFC 9051 §7.5.2), and RFC 3516 §4.4 lets the server change the CTE of
    appended data as long as nothing is lost: BINARY[...] still returns the
    original octets. Most messages are returned unchanged without being parsed."""
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


def _charset_text(raw: bytes, charset: str | None) -> str:
    try:
        return raw.decode(charset or "utf-8", "replace")
    except LookupError:
        return raw.decode("utf-8", "replace")


_TAGS = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.S | re.I)


def _text_of(data: bytes, part: Part, out: list[str], budget: list[int]) -> None:
    if budget[0] <= 0:
        return
    if part.children:
        for child in part.children:
            _text_of(data, child, out, budget)
        return
    if not part.ctype.startswith("text/"):
        return
    headers = part_headers(data, part)
    # Only the encoded octets that can give budget*4 decoded ones (quoted-printable
    # takes at most 3 each, with soft breaks): not a copy of a whole large part.
    encoded = data[part.body:min(part.end, part.body + budget[0] * 16)]
    raw = decode_transfer(encoded, part.encoding)
    text = _charset_text(raw[:budget[0] * 4], headers.get_content_charset())
    if part.ctype == "text/html":
        text = html.unescape(_TAGS.sub(" ", text))
    text = text[:budget[0]]
    budget[0] -= len(text)
    out.append(text)


# --- search and sort keys (RFC 9051 §6.4.4, RFC 5256, RFC 5957) -------------------------------
_COMMENT = re.compile(r"\((?:[^()\\]|\\.)*\)")


def _bare(text: str | None) -> str:
    """A mailbox or host without the comments and folding whitespace (CFWS, RFC 5322
    §3.2.2) an address may carry between its tokens."""
    return re.sub(r"\s+", "", _COMMENT.sub("", text or ""))


def _first_address(value: str | None) -> tuple[str, str, str] | None:
    """(decoded display name, mailbox, host) of a field's first address structure:
    a group's start counts, its name standing as the mailbox (RFC 9051 §7.5.2)."""
    for a in parse_addresses(value or ""):
        if a.group:
            return "", a.name or "", ""
        return decode_words(a.name), _bare(a.mailbox), _bare(a.host)
    return None


def _address_text(value: str | None) -> str:
    """What SEARCH FROM/TO/CC/BCC look in (RFC 9051 §6.4.4): the decoded field, then
    each address as mailbox@host without CFWS, one a line, so that
    "<user (c)@ (c) example.org>" is found as user@example.org."""
    if not value:
        return ""
    specs = [_bare(a.mailbox) + ("@" + _bare(a.host) if a.host else "")
             for a in parse_addresses(value) if not a.group and a.mailbox]
    return "\n".join([decode_words(value), *specs])


def _header_text(headers: Headers) -> str:
    """Every header field, unfolded and decoded (RFC 2047): what SEARCH TEXT looks
    in besides the body (RFC 9051 §6.4.4)."""
    return "\n".join(f"{name}: {decode_words(_unfold(value))}"
                     for name, value in headers.raw_items())


def _sent_day(value: str | None) -> int | None:
    """The Date: field's date as written, as YYYYMMDD: SENTBEFORE, SENTON and
    SENTSINCE disregard its time and timezone (RFC 9051 §6.4.4)."""
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        day = datetime.date(*parsed[:3])
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return day.year * 10000 + day.month * 100 + day.day


def _date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def parse(data: bytes) -> MessageMeta:
    part, headers = parse_structure(data)
    text: list[str] = []
    _text_of(data, part, text, [MAX_TEXT])
    subject = decode_words(_raw(headers, "Subject"))
    first_from = _first_address(_raw(headers, "From"))
    first_to = _first_address(_raw(headers, "To"))
    return MessageMeta(
        structure=part,
        envelope=envelope(headers),
        body=body_structure(data, part, extensible=False),
        bodystructure=body_structure(data, part, extensible=True),
        header=data[:part.body],
        sent=_date(_raw(headers, "Date")),
        sent_day=_sent_day(_raw(headers, "Date")),
        subject=subject,
        base_subject=threads.sort_subject(subject),
        from_=_address_text(_raw(headers, "From")),
        to=_address_text(_raw(headers, "To")),
        cc=_address_text(_raw(headers, "Cc")),
        bcc=_address_text(_raw(headers, "Bcc")),
        sort_from=threads.mailbox_key(first_from),
        sort_to=threads.mailbox_key(first_to),
        sort_cc=threads.mailbox_key(_first_address(_raw(headers, "Cc"))),
        display_from=threads.display_key(first_from),
        display_to=threads.display_key(first_to),
        message_id=(_raw(headers, "Message-ID") or "").strip(),
        in_reply_to=(_raw(headers, "In-Reply-To") or "").strip(),
        references=(_raw(headers, "References") or "").strip(),
        header_text=_header_text(headers),
        text="\n".join(text),
    )


# --- sections (RFC 9051 §6.4.5 BODY[section]) -------------------------------------------------
class SectionError(Exception):
    """The section does not exist in this message: the FETCH item is NIL."""


class UnknownEncoding(Exception):
    """BINARY of a part whose Content-Transfer-Encoding we cannot undo."""


def find_part(root: Part, path: list[int]) -> Part:
    """The part a section-part names (RFC 9051 §6.4.5). A message's parts are
    the parts of its multipart body, or else its body alone as part 1 ("every
    message has at least one part number"); a message/rfc822 part's own number
    is followed by the numbers of the parts of the message it encapsulates. So
    in a message/rfc822 message, 1 is the encapsulated message and 1.1 its first
    part; in a multipart one, 2.1 is the first part of part 2."""
    part, is_message = root, True
    for n in path:
        parts = _numbered_parts(part, is_message)
        if not 1 <= n <= len(parts):
            raise SectionError
        part, is_message = parts[n - 1], False
    return part


def _numbered_parts(part: Part, is_message: bool) -> list[Part]:
    """The parts numbered below `part`: a message (the top level, or the one a
    message/rfc822 part holds) has at least part 1; a multipart part has its
    body parts; any other part has none."""
    if not is_message and part.is_message:
        part, is_message = part.children[0], True
    if part.is_multipart and part.children:
        return part.children
    return [part] if is_message else []


def header_fields(header: bytes, names: list[str], exclude: bool) -> bytes:
    """HEADER.FIELDS (names) / HEADER.FIELDS.NOT: the matching fields, then CRLF."""
    wanted = {n.lower() for n in names}
    out = bytearray()
    keep = False
    for line in header.splitlines(keepends=True):
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t"):
            if keep:
                out += line
            continue
        name = line.split(b":", 1)[0].strip().decode("ascii", "replace").lower()
        keep = (name in wanted) != exclude
        if keep:
            out += line
    return bytes(out) + b"\r\n"


def section(data: bytes, root: Part, path: list[int], text: str,
            fields: list[str] | None = None) -> bytes:
    """The octets of BODY[path.text] (RFC 9051 §6.4.5; text: "", HEADER,
    HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT, MIME)."""
    part = find_part(root, path) if path else root
    if text == "":
        # [] is the whole message; [n] a part's body without its MIME header
        return data[part.body:part.end] if path else data
    if text == "MIME":
        # [n.MIME]: the part's own MIME header block, blank line included
        if not path:
            raise SectionError
        return data[part.start:part.body]
    if path:
        # HEADER and TEXT after a part number need a message/rfc822 part: they
        # address the header and body of the message it encapsulates.
        if not part.is_message:
            raise SectionError
        part = part.children[0]
    if text == "TEXT":
        return data[part.body:part.end]
    header = data[part.start:part.body]
    if text == "HEADER":
        return header
    return header_fields(header, fields or [], text == "HEADER.FIELDS.NOT")


def binary(data: bytes, root: Part, path: list[int]) -> bytes:
    """The octets of BINARY[path] (RFC 3516 §4.2, RFC 9051 §6.4.5): the part's
    body with its Content-Transfer-Encoding undone. BINARY[] is the whole message
    as stored (its header is never encoded). Composite parts can only carry an
    identity encoding (RFC 2045 §6.4), so theirs come back as they are."""
    if not path:
        return data
    part = find_part(root, path)
    if part.encoding not in KNOWN_ENCODINGS:
        raise UnknownEncoding(part.encoding)
    return decode_transfer(data[part.body:part.end], part.encoding)
