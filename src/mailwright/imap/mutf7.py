"""Modified UTF-7 mailbox names (RFC 3501 §5.1.3), for clients that did not enable
UTF-8 (RFC 9051 §6.3.1: IMAP4rev2 and UTF8=ACCEPT clients use UTF-8 names)."""

from __future__ import annotations

import base64
import binascii


class NameError_(ValueError):
    pass


def _base64(text: str) -> str:
    """Modified BASE64 of UTF-16: no padding, "," instead of "/"."""
    raw = text.encode("utf-16-be")
    return base64.b64encode(raw).decode().rstrip("=").replace("/", ",")


def encode(name: str) -> str:
    out = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            out.append("&" + _base64("".join(pending)) + "-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def decode(name: str) -> str:
    """Decode a modified UTF-7 name; raises NameError_ when it is malformed."""
    out = []
    i = 0
    while i < len(name):
        ch = name[i]
        if ord(ch) > 0x7E or ord(ch) < 0x20:
            raise NameError_("8-bit or control characters in a modified UTF-7 name")
        if ch != "&":
            out.append(ch)
            i += 1
            continue
        end = name.find("-", i + 1)
        if end < 0:
            raise NameError_("unterminated &... sequence")
        chunk = name[i + 1:end]
        out.append(_decode_chunk(chunk) if chunk else "&")
        i = end + 1
    return "".join(out)


def _decode_chunk(chunk: str) -> str:
    b64 = chunk.replace(",", "/")
    try:
        raw = base64.b64decode(b64 + "=" * (-len(b64) % 4), validate=True)
        text = raw.decode("utf-16-be")
    except (binascii.Error, UnicodeDecodeError):
        raise NameError_("bad modified base64") from None
    # RFC 3501 §5.1.3: modified BASE64 MUST NOT represent a printable US-ASCII
    # character. Requiring the leftover bits to be zero as well gives each run
    # one spelling, so two client names never open the same mailbox.
    if any(0x20 <= ord(c) <= 0x7E for c in text) or _base64(text) != chunk:
        raise NameError_("modified base64 not in its one valid form")
    return text
