"""Modified UTF-7 mailbox names (RFC 3501 §5.1.3), for clients that did not enable
UTF-8 (RFC 9051 §6.3.1: IMAP4rev2 and UTF8=ACCEPT clients use UTF-8 names)."""

from __future__ import annotations

import base64
import binascii


class NameError_(ValueError):
    pass


def encode(name: str) -> str:
    out = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(raw).decode().rstrip("=").replace("/", ",") + "-")
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
        if not chunk:
            out.append("&")
        else:
            b64 = chunk.replace(",", "/")
            try:
                raw = base64.b64decode(b64 + "=" * (-len(b64) % 4), validate=True)
                out.append(raw.decode("utf-16-be"))
            except (binascii.Error, UnicodeDecodeError):
                raise NameError_("bad modified base64") from None
        i = end + 1
    return "".join(out)
