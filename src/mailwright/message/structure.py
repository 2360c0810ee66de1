"""The MIME part tree of a message with octet offsets (RFC 2045 §5, RFC 2046 §5).

The byte-level splitting (header/body, multipart boundaries, RFC 2046 §5.1.1) is
ours: readers of a part need its exact offsets, size and line count, which the email
package does not keep."""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass, field

from .headers import Headers, parse_headers

MAX_DEPTH = 16            # nested multiparts / messages: deeper ones stay opaque
MAX_PARTS = 500
_HEADER_END = re.compile(rb"\r?\n\r?\n")
MESSAGE_TYPES = ("message/rfc822", "message/global")
# RFC 2045 §6: 7bit, 8bit and binary are identities (they only name the domain of
# the data); RFC 2046 §5.2.1 allows only these for an encapsulated message.
IDENTITY_ENCODINGS = frozenset({"7bit", "8bit", "binary"})


@dataclass
class Part:
    start: int                     # first octet of the part's header
    body: int                      # first octet of its body
    end: int                       # one past its last octet
    ctype: str = "text/plain"
    encoding: str = "7bit"
    children: list[Part] = field(default_factory=list)  # multipart parts, or the
    # one encapsulated message of a message/rfc822 part
    headers: Headers | None = field(default=None, repr=False, compare=False)

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
        return self.ctype in MESSAGE_TYPES and bool(self.children)


def part_headers(data: bytes, part: Part) -> Headers:
    """The part's header fields, parsed on first use."""
    if part.headers is None:
        part.headers = parse_headers(data, part.start, part.body)
    return part.headers


def body_lines(data: bytes, part: Part) -> int:
    """Lines in the part's body; a last line without its line break counts."""
    n = data.count(b"\n", part.body, part.end)
    if part.end > part.body and data[part.end - 1:part.end] != b"\n":
        n += 1
    return n


def _header_end(data: bytes, start: int, end: int) -> int:
    """Offset of the body: after the blank line ending the header, or `end`. Never
    past `end`: an empty part (a message/rfc822 with nothing in it) is followed by the
    line break of the next delimiter, which is not its own (found by fuzz/ mime: the
    body began after the part ended, a BODYSTRUCTURE size of -1)."""
    if data.startswith(b"\r\n", start, end) or data.startswith(b"\n", start, end):
        return start + (2 if data[start] == 0x0D else 1)
    m = _HEADER_END.search(data, start, end)
    return m.end() if m else end


def _mechanism(value: str | None) -> str:
    """RFC 2045 §6.1: the Content-Transfer-Encoding token, case-insensitive, with
    comments around it dropped; 7bit when the field is absent (§6.1) or empty."""
    words = re.sub(r"\([^()]*\)", " ", value or "").split()
    return words[0].lower() if words else "7bit"


def parse_structure(data: bytes, start: int = 0, end: int | None = None,
                    default: str = "text/plain", depth: int = 0,
                    count: list[int] | None = None) -> tuple[Part, Headers]:
    """The part tree of data[start:end] and its top-level header fields. `default`
    is the type of a part without Content-Type (RFC 2046 §5.1.5: message/rfc822
    in a multipart/digest)."""
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
    elif ctype in MESSAGE_TYPES and encoding in IDENTITY_ENCODINGS:
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
