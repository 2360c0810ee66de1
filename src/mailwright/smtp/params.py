"""MAIL FROM / RCPT TO arguments: paths (RFC 5321 §4.1.2) and ESMTP parameters."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..address import Address, AddressError, parse_mailbox
from .replies import Reply


class ParamError(Exception):
    def __init__(self, reply: Reply):
        super().__init__(reply.lines[0])
        self.reply = reply


def _syntax(text: str, status: str = "5.5.4", code: int = 501) -> ParamError:
    return ParamError(Reply(code, status, text))


# RFC 5321 §4.1.2 esmtp-keyword / esmtp-value (value: any printable but "=" and SP;
# RFC 6531 §3.3 lets it carry UTF-8).
_PARAM = re.compile(r"^([A-Za-z0-9][A-Za-z0-9-]*)(?:=([^=\s\x00-\x1f]+))?$")
_AT_DOMAIN_LIST = re.compile(r"^@[^,:]+(?:,@[^,:]+)*:")
_XTEXT = re.compile(r"^(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})*$")


def decode_xtext(value: str) -> str:
    """RFC 3461 §4: "+XX" hex escapes; ValueError when malformed."""
    if not _XTEXT.match(value):
        raise ValueError("invalid xtext")
    return re.sub(r"\+([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), value)


@dataclass
class PathArgument:
    address: Address | None          # None for the null reverse-path <>
    params: dict[str, str | None] = field(default_factory=dict)


def parse_path_argument(arg: str, prefix: str, allow_null: bool) -> PathArgument:
    """Parse `FROM:<path> params` / `TO:<path> params` (the verb already removed)."""
    if arg[:len(prefix)].upper() != prefix:
        raise _syntax(f"Syntax: {'MAIL FROM' if prefix == 'FROM:' else 'RCPT TO'}:<address>",
                      "5.5.2")
    rest = arg[len(prefix):].lstrip(" ")   # a space after the colon is common; tolerate it
    if not rest.startswith("<"):
        raise _syntax("Address must be enclosed in <>", "5.1.7" if allow_null else "5.1.3")
    close = _find_path_end(rest)
    if close < 0:
        raise _syntax("Unterminated address: missing >", "5.5.2")
    path, tail = rest[1:close], rest[close + 1:]
    if tail and not tail.startswith(" "):
        raise _syntax("Garbage after address", "5.5.2")
    if len(path.encode()) > 256:                    # RFC 5321 §4.5.3.1.3
        raise ParamError(Reply(501, "5.1.3", "Path too long"))
    address = None
    if path:
        # RFC 5321 §4.1.1.3 / Appendix C: a source route is accepted but ignored;
        # only the final mailbox counts, so `<@a:b@c>` is treated as `<b@c>`.
        if path.startswith("@"):
            m = _AT_DOMAIN_LIST.match(path)
            if not m:
                raise _syntax("Invalid source route", "5.1.3" if not allow_null else "5.1.7")
            path = path[m.end():]
        try:
            address = parse_mailbox(path)
        except AddressError as e:
            raise ParamError(Reply(501, "5.1.7" if allow_null else "5.1.3",
                                   f"Bad address syntax: {e}")) from None
    elif not allow_null:
        raise ParamError(Reply(501, "5.1.3", "Null recipient address not allowed"))
    params: dict[str, str | None] = {}
    for word in tail.split():
        m = _PARAM.match(word)
        if not m:
            raise _syntax(f"Invalid parameter syntax: {word[:40]}", "5.5.4")
        key = m.group(1).upper()
        if key in params:
            raise _syntax(f"Duplicate parameter {key}", "5.5.4")
        params[key] = m.group(2)
    return PathArgument(address, params)


def _find_path_end(text: str) -> int:
    """Index of the ">" closing the path, skipping quoted local parts."""
    if '"' not in text:
        return text.find(">")
    quoted = False
    i = 1
    while i < len(text):
        c = text[i]
        if quoted and c == "\\":
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c == ">" and not quoted:
            return i
        i += 1
    return -1
