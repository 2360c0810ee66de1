"""Rendering IMAP response data (RFC 9051 §4, §7): strings, NIL, lists, dates.

A string goes out quoted when it can be (short, no CR/LF/NUL, no 8-bit octets
unless the client accepts UTF-8), as a literal otherwise, so every response parses
back with the grammar's own rules.
"""

from __future__ import annotations

import datetime
import time

from . import mutf7
from .parser import MONTHS

QUOTED_MAX = 1024


def astring_ok(data: bytes) -> bool:
    """Can this be sent as an atom (no quoting)?"""
    return bool(data) and all(0x21 <= c < 0x7F and c not in b'(){%*"\\' for c in data) \
        and data.upper() != b"NIL"


def string(value: bytes | str | None, utf8: bool = True) -> bytes:
    """nstring: NIL, a quoted string or a literal."""
    if value is None:
        return b"NIL"
    data = value.encode("utf-8") if isinstance(value, str) else value
    if len(data) <= QUOTED_MAX and b"\r" not in data and b"\n" not in data \
            and b"\x00" not in data and (utf8 or data.isascii()):
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return literal(data)


def mailbox_name(name: str, utf8: bool) -> bytes:
    """A mailbox name as the client reads it: UTF-8 under IMAP4rev2 or UTF8=ACCEPT
    (RFC 9051 §5.1, RFC 6855 §3), modified UTF-7 otherwise (RFC 3501 §5.1.3)."""
    return string(name if utf8 else mutf7.encode(name))


def literal(data: bytes, binary: bool = False) -> bytes:
    return literal_head(len(data), binary) + data


def literal_head(length: int, binary: bool = False) -> bytes:
    """What comes before a literal's octets: {length} CRLF, ~{length} for a literal8
    (RFC 3516 §4.3)."""
    return (b"~{%d}\r\n" if binary else b"{%d}\r\n") % length


def astring(value: str, utf8: bool = True) -> bytes:
    data = value.encode("utf-8")
    return data if astring_ok(data) else string(data, utf8)


def paren(items) -> bytes:
    return b"(" + b" ".join(items) + b")"


def date_time(ts: float) -> bytes:
    """RFC 9051 date-time of a Unix time, in the server's local zone."""
    t = time.localtime(ts)
    offset = t.tm_gmtoff // 60
    sign = "+" if offset >= 0 else "-"
    offset = abs(offset)
    return (f'"{t.tm_mday:02d}-{MONTHS[t.tm_mon - 1]}-{t.tm_year:04d} '
            f'{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} '
            f'{sign}{offset // 60:02d}{offset % 60:02d}"').encode()


def timestamp(dt: datetime.datetime) -> float:
    return dt.timestamp()


def sequence_set(values: list[int]) -> str:
    """Compress sorted numbers into an RFC 9051 sequence set: 1:3,7,9:10."""
    parts = []
    start = prev = None
    for v in values:
        if start is None:
            start = prev = v
        elif v == prev + 1:
            prev = v
        else:
            parts.append(f"{start}" if start == prev else f"{start}:{prev}")
            start = prev = v
    if start is not None:
        parts.append(f"{start}" if start == prev else f"{start}:{prev}")
    return ",".join(parts)
