"""Address lists in header fields (RFC 5322 §3.4): groups, obs-route, comments.

Not the envelope addresses of SMTP (mailwright/address.py): these are what From,
To, Cc... say, as written, for display, ENVELOPE, sorting and search."""

from __future__ import annotations

import re
from typing import NamedTuple

from .headers import decode_words

_ADDR_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|\((?:[^()\\]|\\.)*\)|<[^>]*>|[,:;]|[^\s",:;<(]+')
_COMMENT = re.compile(r"\((?:[^()\\]|\\.)*\)")


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


def bare(text: str | None) -> str:
    """A mailbox or host without the comments and folding whitespace (CFWS, RFC 5322
    §3.2.2) an address may carry between its tokens."""
    return re.sub(r"\s+", "", _COMMENT.sub("", text or ""))


# (decoded display name, mailbox, host)
FirstAddress = tuple[str, str, str]


def first_address(value: str | None) -> FirstAddress | None:
    """(decoded display name, mailbox, host) of a field's first address structure:
    a group's start counts, its name standing as the mailbox (RFC 9051 §7.5.2)."""
    for a in parse_addresses(value or ""):
        if a.group:
            return "", a.name or "", ""
        return decode_words(a.name), bare(a.mailbox), bare(a.host)
    return None


def address_text(value: str | None) -> str:
    """What a search of an address field looks in (RFC 9051 §6.4.4): the decoded
    field, then each address as mailbox@host without CFWS, one a line, so that
    "<user (c)@ (c) example.org>" is found as user@example.org."""
    if not value:
        return ""
    specs = [bare(a.mailbox) + ("@" + bare(a.host) if a.host else "")
             for a in parse_addresses(value) if not a.group and a.mailbox]
    return "\n".join([decode_words(value), *specs])
