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
import email.header
import email.message
import email.utils
import html
import json
import re
from dataclasses import dataclass, field

from . import render

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
    sent: float | None              # Date: header, for SENTBEFORE/SORT DATE
    subject: str                    # decoded
    base_subject: str               # RFC 5256 §2.1
    from_: str                      # decoded, for SEARCH FROM
    to: str
    cc: str
    bcc: str
    sort_from: str                  # RFC 5256 §3: first addr-mailbox, lowercased
    sort_to: str
    sort_cc: str
    message_id: str
    in_reply_to: str
    references: str
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
    encoding = str(headers.get("Content-Transfer-Encoding", "7bit")).strip().lower() or "7bit"
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
        if i != start and data[i - 1:i] != b"\n":
            pos = i + len(delim)
            continue
        line_end = data.find(b"\n", i, end)
        line_end = end if line_end < 0 else line_end + 1
        closing = data.startswith(b"--", i + len(delim))
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


def parse_addresses(value: str) -> list[tuple[str | None, str | None, str | None, bool]]:
    """(display name, mailbox, host, is_group_marker) items; a group is its start
    (name, None, None, True), its members, then (None, None, None, True)."""
    out: list = []
    words: list[str] = []
    angle: str | None = None
    in_group = False

    def flush() -> None:
        nonlocal angle
        if angle is None and not words:
            return
        if angle is not None:
            name = " ".join(w for w in words) or None
            spec = angle
        else:
            name, spec = None, "".join(words)
        local, _, host = spec.rpartition("@") if "@" in spec else (spec, "", "")
        if name and name.startswith('"') and name.endswith('"') and len(name) >= 2:
            name = re.sub(r"\\(.)", r"\1", name[1:-1])
        out.append((name, local or None, host or None, False))
        words.clear()
        angle = None

    for token in _ADDR_TOKENS.findall(value):
        if token.startswith("("):
            continue                                      # comment
        if token.startswith("<"):
            spec = token[1:-1].strip()
            angle = spec.split(":")[-1] if ":" in spec else spec   # drop a source route
        elif token == ",":
            flush()
        elif token == ":" and not in_group and angle is None:
            name = " ".join(words)
            if name.startswith('"') and name.endswith('"'):
                name = name[1:-1]
            out.append((name, None, None, True))
            words.clear()
            in_group = True
        elif token == ";" and in_group:
            flush()
            out.append((None, None, None, True))
            in_group = False
        else:
            words.append(token)
    flush()
    if in_group:
        out.append((None, None, None, True))
    return out


def _address_list(value: str | None) -> bytes:
    if not value:
        return b"NIL"
    items = []
    for name, local, host, group in parse_addresses(value):
        if group:
            items.append(b"(NIL NIL " + render.string(name, False) + b" NIL)" if name is not None
                         else b"(NIL NIL NIL NIL)")
        else:
            items.append(b"(" + b" ".join((render.string(name, False), b"NIL",
                                          render.string(local, False),
                                          render.string(host or "", False))) + b")")
    return render.paren(items) if items else b"NIL"


def _raw(headers: Headers, name: str) -> str | None:
    value = headers.first.get(name.lower())
    if value is None:
        return None
    if "\n" in value:                                  # folded: unfold (RFC 5322 §2.2.3)
        value = re.sub(r"\r?\n[ \t]", " ", value)
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


def decode_transfer(raw: bytes, encoding: str) -> bytes:
    """Undo a Content-Transfer-Encoding (RFC 2045 §6); unknown ones stay as they are."""
    if encoding == "base64":
        try:
            return base64.b64decode(re.sub(rb"[^A-Za-z0-9+/=]", b"", raw) + b"==")
        except binascii.Error:
            return b""
    if encoding == "quoted-printable":
        return binascii.a2b_qp(raw)
    return raw


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
    raw = decode_transfer(data[part.body:part.end], part.encoding)
    text = _charset_text(raw[:budget[0] * 4], headers.get_content_charset())
    if part.ctype == "text/html":
        text = html.unescape(_TAGS.sub(" ", text))
    text = text[:budget[0]]
    budget[0] -= len(text)
    out.append(text)


# --- sort keys (RFC 5256) --------------------------------------------------------------------
_SUBJ_LEADER = re.compile(r"^(?:\s*(?:re|fwd?)\s*(?:\[[^\[\]]*\])?\s*:|\s*\[[^\[\]]*\]\s*)",
                          re.I)
_SUBJ_TRAILER = re.compile(r"(?:\s*\(fwd\)\s*|\s+)$", re.I)


def base_subject(subject: str) -> str:
    """RFC 5256 §2.1: strip reply/forward markers and list tags, fold whitespace."""
    s = re.sub(r"\s+", " ", subject).strip()
    while True:
        prev = s
        while True:
            t = _SUBJ_TRAILER.sub("", s)
            if t == s:
                break
            s = t
        while True:
            m = _SUBJ_LEADER.match(s)
            if not m or not s[m.end():].strip():
                break
            s = s[m.end():].strip()
        if s.lower().startswith("[fwd:") and s.endswith("]"):
            s = s[5:-1].strip()
        if s == prev:
            return s.lower()


def _first_mailbox(value: str | None) -> str:
    for _name, local, _host, group in parse_addresses(value or ""):
        if not group:
            return (local or "").lower()
    return ""


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
    return MessageMeta(
        structure=part,
        envelope=envelope(headers),
        body=body_structure(data, part, extensible=False),
        bodystructure=body_structure(data, part, extensible=True),
        header=data[:part.body],
        sent=_date(_raw(headers, "Date")),
        subject=subject,
        base_subject=base_subject(subject),
        from_=decode_words(_raw(headers, "From")),
        to=decode_words(_raw(headers, "To")),
        cc=decode_words(_raw(headers, "Cc")),
        bcc=decode_words(_raw(headers, "Bcc")),
        sort_from=_first_mailbox(_raw(headers, "From")),
        sort_to=_first_mailbox(_raw(headers, "To")),
        sort_cc=_first_mailbox(_raw(headers, "Cc")),
        message_id=(_raw(headers, "Message-ID") or "").strip(),
        in_reply_to=(_raw(headers, "In-Reply-To") or "").strip(),
        references=(_raw(headers, "References") or "").strip(),
        text="\n".join(text),
    )


# --- sections (RFC 9051 §6.4.5 BODY[section]) -------------------------------------------------
class SectionError(Exception):
    """The section does not exist in this message: the FETCH item is empty."""


def find_part(root: Part, path: list[int]) -> Part:
    """The part a section-part names: "1.2" is the second part of the first part;
    a message/rfc822 part's numbers continue into the message it holds."""
    part = root
    for n in path:
        if part.is_message:
            part = part.children[0]
        if part.is_multipart and part.children:
            if not 1 <= n <= len(part.children):
                raise SectionError
            part = part.children[n - 1]
        elif n != 1:
            raise SectionError
    return part


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
    """The octets of BODY[path.text] (text: "", HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT,
    TEXT, MIME)."""
    if not path:
        part = root
    else:
        part = find_part(root, path)
    if text == "":
        return data[part.body:part.end] if path else data
    if text == "MIME":
        if not path:
            raise SectionError
        return data[part.start:part.body]
    if path:
        if not part.is_message:
            raise SectionError
        part = part.children[0]
    if text == "TEXT":
        return data[part.body:part.end]
    header = data[part.start:part.body]
    if text == "HEADER":
        return header
    return header_fields(header, fields or [], text == "HEADER.FIELDS.NOT")
