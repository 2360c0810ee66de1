"""MAIL FROM / RCPT TO arguments: paths (RFC 5321 §4.1.2) and ESMTP parameters."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..address import Address, AddressError, parse_mailbox
from ..delivery.received import Envelope, Recipient
from ..smtpreply import Reply

_NOTIFY_VALUES = {"SUCCESS", "FAILURE", "DELAY"}


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


def read_mail_parameters(envelope: Envelope, params: dict[str, str | None], esmtp: bool,
                         max_size: int) -> None:
    """MAIL FROM's ESMTP parameters into the envelope; ParamError with the reply."""
    if params and not esmtp:
        raise ParamError(Reply(555, "5.5.4", "Parameters need EHLO"))
    for key, value in params.items():
        if key == "SIZE":                                        # RFC 1870
            if not value or not value.isdigit():
                raise ParamError(Reply(501, "5.5.4", "Invalid SIZE value"))
            if int(value) > max_size:
                raise ParamError(Reply(552, "5.3.4",
                                       "Message size exceeds fixed maximum message size"))
            envelope.size = int(value)
        elif key == "BODY":                                      # RFC 6152
            body = (value or "").upper()
            if body not in ("7BIT", "8BITMIME"):
                raise ParamError(Reply(501, "5.5.4", "BODY must be 7BIT or 8BITMIME"))
            envelope.body = body
        elif key == "SMTPUTF8":                                  # RFC 6531 §3.4
            if value is not None:
                raise ParamError(Reply(501, "5.5.4", "SMTPUTF8 takes no value"))
            envelope.smtputf8 = True
        elif key == "RET":                                       # RFC 3461 §4.3
            ret = (value or "").upper()
            if ret not in ("FULL", "HDRS"):
                raise ParamError(Reply(501, "5.5.4", "RET must be FULL or HDRS"))
            envelope.ret = ret
        elif key == "ENVID":                                     # RFC 3461 §4.4
            try:
                envid = decode_xtext(value or "")
            except ValueError:
                envid = ""
            if not envid or len(value or "") > 100:
                raise ParamError(Reply(501, "5.5.4", "Invalid ENVID value"))
            envelope.envid = envid
        elif key == "AUTH":
            # RFC 4954 §5: the claimed original submitter. We are not relaying
            # on behalf of a trusted MTA, so it is accepted and not used.
            continue
        else:
            raise ParamError(Reply(555, "5.5.4", f"Unsupported parameter {key}"))


def read_rcpt_parameters(rcpt: Recipient, params: dict[str, str | None], esmtp: bool) -> None:
    """RCPT TO's ESMTP parameters (RFC 3461 DSN) into rcpt; ParamError with the reply."""
    if params and not esmtp:
        raise ParamError(Reply(555, "5.5.4", "Parameters need EHLO"))
    for key, value in params.items():
        if key == "NOTIFY":                                      # RFC 3461 §4.1
            words = (value or "").upper().split(",")
            if words != ["NEVER"] and not (set(words) <= _NOTIFY_VALUES
                                           and len(set(words)) == len(words)):
                raise ParamError(Reply(501, "5.5.4",
                                       "NOTIFY must be NEVER or SUCCESS,FAILURE,DELAY"))
            rcpt.notify = ",".join(words)
        elif key == "ORCPT":                                     # RFC 3461 §4.2
            addr_type, sep, xtext = (value or "").partition(";")
            try:
                original = decode_xtext(xtext)
            except ValueError:
                original = ""
            if not sep or not addr_type or not original:
                raise ParamError(Reply(501, "5.5.4", "Invalid ORCPT value"))
            rcpt.orcpt = f"{addr_type};{original}"
        else:
            raise ParamError(Reply(555, "5.5.4", f"Unsupported parameter {key}"))
