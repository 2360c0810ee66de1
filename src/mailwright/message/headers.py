"""Header fields (RFC 5322 §2.2): split from the octets, unfolded when read, and
decoded (RFC 2047 encoded words). Header semantics (parameters, RFC 2231, charsets)
come from the standard library's compat32 Message."""

from __future__ import annotations

import binascii
import email.errors
import email.header
import email.message
import email.utils
import re

_FOLD = re.compile(r"\r?\n(?=[ \t])")


def unfold(value: str) -> str:
    """RFC 5322 §2.2.3: a CRLF followed by WSP is removed."""
    return _FOLD.sub("", value)


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
            value = unfold(value)
        return value

    def value(self, name: str) -> str | None:
        """The first such field's value as sent (not decoded), unfolded and
        stripped; None when there is no such field."""
        value = self.first.get(name.lower())
        if value is None:
            return None
        if "\n" in value:
            value = unfold(value)
        return value.strip()

    def params(self, name: str) -> list[tuple[str, str]]:
        """The parameters of a Content-Type or Content-Disposition field (RFC 2045
        §5.1, RFC 2183 §2), RFC 2231 continuations and charsets undone; names as
        the email package gives them (lowercased)."""
        out = []
        for i, (key, value) in enumerate(self.get_params(header=name) or []):
            if i == 0:
                continue                               # the type/subtype or disposition
            if isinstance(value, tuple):
                value = email.utils.collapse_rfc2231_value(value)
            out.append((key, str(value)))
        return out


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


def decode_words(value: str | None) -> str:
    """RFC 2047 encoded words to text."""
    if not value or "=?" not in value:
        return value or ""
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (UnicodeError, LookupError, binascii.Error, ValueError,
            email.errors.CharsetError):
        # CharsetError: a charset name that is not ASCII (=?ut\xe6-8?q?...?=), found by
        # fuzz/ (mime): the field stays as it was sent.
        return value


def header_text(headers: Headers) -> str:
    """Every header field, unfolded and decoded (RFC 2047), one a line: what a
    search of the whole message looks in besides the body."""
    return "\n".join(f"{name}: {decode_words(unfold(value))}"
                     for name, value in headers.raw_items())


def field_matches(header: bytes, name: str, text: str) -> bool:
    """Does a field of this name in the header block hold `text` in its decoded
    value, case-insensitively? An empty text matches any such field."""
    needle = text.lower()
    for value in parse_headers(header, 0, len(header)).get_all(name.lower(), []) or []:
        if not needle or needle in decode_words(str(value)).lower():
            return True
    return False


def select_fields(header: bytes, names: list[str], exclude: bool) -> bytes:
    """The fields of a header block whose names are (exclude: are not) among
    `names`, as they are (folding kept), then CRLF."""
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
