"""LIST and LSUB (RFC 9051 §6.3.9, RFC 5258 LIST-EXTENDED, RFC 5819 LIST-STATUS,
RFC 6154 SPECIAL-USE): which mailboxes match, with which attributes."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..net.connection import Action
from ..store.mailboxes import HIERARCHY
from .parser import ParseError, Reader

if TYPE_CHECKING:
    from .session import ImapSession

SELECT_OPTIONS = ("SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE")


def pattern_regex(reference: str, pattern: str) -> re.Pattern:
    """RFC 9051 §6.3.9: "*" matches anything, "%" anything but the hierarchy
    delimiter; the reference is prefixed; INBOX matches case-insensitively."""
    full = pattern if not reference or pattern.startswith(HIERARCHY) else reference + pattern
    head, sep, rest = full.partition(HIERARCHY)
    if head.upper() == "INBOX":
        full = "INBOX" + sep + rest
    out = []
    for ch in full:
        if ch == "*":
            out.append(".*")
        elif ch == "%":
            out.append(f"[^{re.escape(HIERARCHY)}]*")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out) + r"\Z", re.S)


def list_command(session: ImapSession, tag: str, r: Reader, lsub: bool):
    r.sp()
    select: list[str] = []
    if not lsub and r.peek() == b"(":
        select = [o.upper() for o in r.list_of(r.atom)]
        bad = [o for o in select if o not in SELECT_OPTIONS]
        if bad:
            raise ParseError(f"unknown LIST selection option {bad[0]}")
        r.sp()
    reference = session._decode_name(r.astring())
    r.sp()
    if not lsub and r.peek() == b"(":
        patterns = r.list_of(r.list_mailbox)
    else:
        patterns = [r.list_mailbox()]
    returns: list[str] = []
    status_items: list[str] = []
    if not lsub and r.accept(b" RETURN ("):
        while not r.close():
            r.accept(b" ")
            option = r.atom().upper()
            if option == "STATUS":
                r.sp()
                status_items = [i.upper() for i in r.list_of(r.atom)]
            elif option not in ("SUBSCRIBED", "CHILDREN", "SPECIAL-USE"):
                raise ParseError(f"unknown LIST return option {option}")
            returns.append(option)
    r.end()
    verb = "LSUB" if lsub else "LIST"
    if len(patterns) == 1 and patterns[0] == "" and not select:
        # RFC 9051 §6.3.9: the hierarchy delimiter and root name.
        return b'* LIST (\\Noselect) "/" ""\r\n' + \
            session._done(tag, "OK", f"{verb} completed"), Action.NONE
    patterns = [p if session._utf8 or "&" not in p else session._decode_name(p.encode())
                for p in patterns]
    regexes = [pattern_regex(reference, p) for p in patterns]
    boxes = session.store.mailboxes(session.account_id)
    names = {b.name for b in boxes}
    out = bytearray()
    for box in boxes:
        if not any(rx.match(box.name) for rx in regexes):
            continue
        if (lsub or "SUBSCRIBED" in select) and not box.subscribed:
            continue
        if "SPECIAL-USE" in select and not box.special_use:
            continue
        has_children = any(n.startswith(box.name + HIERARCHY) for n in names)
        attrs = []
        if not lsub:
            attrs.append("\\HasChildren" if has_children else "\\HasNoChildren")
            if box.special_use:
                attrs.append(box.special_use)
            if box.subscribed and ("SUBSCRIBED" in select or "SUBSCRIBED" in returns):
                attrs.append("\\Subscribed")
        out += f"* {verb} ({' '.join(attrs)}) \"{HIERARCHY}\" ".encode() + \
            session._name(box.name) + b"\r\n"
        if status_items:
            out += session.status_line(box, status_items)
    return bytes(out) + session._done(tag, "OK", f"{verb} completed"), Action.NONE
