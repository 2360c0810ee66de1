"""The Authentication-Results header field (RFC 8601): written by us, and removed
from incoming mail when it claims to be ours (§5: a forged verdict)."""

from __future__ import annotations

import re

_SPECIALS = re.compile(r'[\s()<>@,;:\\"/\[\]?=]')


def value(text: str) -> str:
    """A token, or a quoted-string when it has specials (RFC 2045 §5.1), except that an
    addr-spec may stand as is (RFC 8601 §2.2 pvalue)."""
    if text and not _SPECIALS.search(text.replace("@", "", 1) if "@" in text else text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def comment(text: str) -> str:
    return "(" + " ".join(re.sub(r"[()\\]", " ", text).split()) + ")" if text else ""


def method(name: str, result: str, note: str = "", **props: str) -> str:
    """One resinfo: name=result (note) ptype.property=value ... (RFC 8601 §2.2)."""
    parts = [f"{name}={result}"]
    if note:
        parts.append(comment(note))
    for key, v in props.items():
        if v:
            parts.append(f"{key.replace('_', '.', 1)}={value(v)}")
    return " ".join(parts)


def header(authserv_id: str, results: list[str]) -> bytes:
    body = ";\r\n\t".join([authserv_id] + (results or ["none"]))
    return f"Authentication-Results: {body}\r\n".encode()


_FIELD_NAME = re.compile(rb"^([!-9;-~]+)[ \t]*:")


def split_header(message: bytes) -> tuple[list[bytes], bytes]:
    """The header fields (each with its folded lines and CRLF) and the rest."""
    end = message.find(b"\r\n\r\n")
    head, rest = (message, b"") if end < 0 else (message[:end + 2], message[end + 2:])
    fields: list[bytes] = []
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
    return fields, rest


def _authserv_id(field: bytes) -> str:
    text = field.split(b":", 1)[1].decode("utf-8", "replace")
    text = re.sub(r"\([^()]*\)", " ", text)           # CFWS comments
    return text.split(";", 1)[0].split()[0].lower() if text.split(";", 1)[0].split() else ""


def strip_ours(message: bytes, authserv_id: str) -> bytes:
    """Drop every Authentication-Results field that claims our authserv-id."""
    if b"authentication-results" not in message[:message.find(b"\r\n\r\n") + 1].lower():
        return message
    fields, rest = split_header(message)
    ours = authserv_id.lower()
    kept = [f for f in fields
            if not ((m := _FIELD_NAME.match(f)) and m.group(1).lower() ==
                    b"authentication-results" and _authserv_id(f) == ours)]
    return b"".join(kept) + rest
