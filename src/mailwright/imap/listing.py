"""LIST and LSUB (RFC 9051 §6.3.9, RFC 3501 §6.3.8-9, RFC 5258 LIST-EXTENDED,
RFC 5819 LIST-STATUS, RFC 6154 SPECIAL-USE): which names match, with which
attributes.

The names a listing looks at are the mailboxes, the subscribed names (which need
not exist: RFC 9051 §6.3.7) and every level above them. A name is listed when a
pattern matches it and it meets the selection criteria; with RECURSIVEMATCH (and
always for LSUB) also when it has a descendant that meets them which no pattern
matches, so the client learns of it (RFC 5258 §3.5 CHILDINFO, RFC 3501 §6.3.9).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from ..store.mailboxes import HIERARCHY, Mailbox, MailboxStore
from . import mutf7, render
from .parser import ParseError, Reader

# RFC 5258 §6 (and RFC 6154 §6 for SPECIAL-USE): base options select mailboxes,
# REMOTE is independent of them, RECURSIVEMATCH modifies the base options.
SELECT_BASE = ("SUBSCRIBED", "SPECIAL-USE")
SELECT_INDEPENDENT = ("REMOTE",)
SELECT_MODIFIER = ("RECURSIVEMATCH",)
RETURN_OPTIONS = ("SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS")


@dataclass(frozen=True)
class ListCommand:
    lsub: bool
    select: frozenset[str]
    reference: str
    patterns: tuple[str, ...]
    returns: frozenset[str]
    status_items: tuple[str, ...] = ()

    @property
    def criteria(self) -> tuple[str, ...]:
        """The base selection criteria in force; LSUB is LIST (SUBSCRIBED) with
        RECURSIVEMATCH shown as \\Noselect (RFC 5258 §3.5)."""
        if self.lsub:
            return ("SUBSCRIBED",)
        return tuple(o for o in SELECT_BASE if o in self.select)

    @property
    def recursive(self) -> bool:
        """List parents of selected names that no pattern reaches? RFC 5258 §3.1
        RECURSIVEMATCH; RFC 3501 §6.3.9 for LSUB; and for a plain LIST, levels
        above existing mailboxes (RFC 9051 §6.3.9 "%" rule)."""
        return self.lsub or "RECURSIVEMATCH" in self.select or not self.criteria


@dataclass(frozen=True)
class Listed:
    name: str
    mailbox: Mailbox | None            # None: the name does not exist
    attributes: tuple[str, ...]
    childinfo: tuple[str, ...] = ()    # RFC 5258 §3.5: criteria a descendant meets


# --- parsing ----------------------------------------------------------------------------
def parse_list(r: Reader, lsub: bool) -> ListCommand:
    """RFC 5258 §6: LIST [SP list-select-opts] SP mailbox SP mbox-or-pat
    [SP list-return-opts]; LSUB takes only the reference and one pattern."""
    r.sp()
    select: frozenset[str] = frozenset()
    if not lsub and r.peek() == b"(":
        select = _select_options(r)
        r.sp()
    reference = r.text(r.astring())
    r.sp()
    if not lsub and r.peek() == b"(":
        patterns = tuple(r.list_of(r.list_mailbox))
        if not patterns:
            raise ParseError("expected at least one mailbox pattern")
    else:
        patterns = (r.list_mailbox(),)
    returns: frozenset[str] = frozenset()
    status_items: tuple[str, ...] = ()
    if not lsub and r.accept(b" RETURN "):
        returns, status_items = _return_options(r)
    r.end()
    return ListCommand(lsub, select, reference, patterns, returns, status_items)


def _select_options(r: Reader) -> frozenset[str]:
    options = [o.upper() for o in r.list_of(r.atom)]
    for option in options:
        if option not in SELECT_BASE + SELECT_INDEPENDENT + SELECT_MODIFIER:
            raise ParseError(f"unknown LIST selection option {option}")
    chosen = frozenset(options)
    # RFC 5258 §3.1: RECURSIVEMATCH alone (or only with REMOTE) is answered with BAD.
    if chosen & set(SELECT_MODIFIER) and not chosen & set(SELECT_BASE):
        raise ParseError("RECURSIVEMATCH needs another selection option (RFC 5258 §3.1)")
    return chosen


def _return_options(r: Reader) -> tuple[frozenset[str], tuple[str, ...]]:
    """"(" [return-option *(SP return-option)] ")"; STATUS carries its items."""
    r.expect(b"(")
    options: list[str] = []
    status_items: tuple[str, ...] = ()
    while not r.close():
        if options:
            r.sp()
        option = r.atom().upper()
        if option not in RETURN_OPTIONS:
            raise ParseError(f"unknown LIST return option {option}")
        if option == "STATUS":                       # RFC 5819 §2
            r.sp()
            status_items = tuple(r.status_atts())
        options.append(option)
    return frozenset(options), status_items


# --- matching ---------------------------------------------------------------------------
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


def name_matcher(reference: str, patterns: Iterable[str], utf8: bool
                 ) -> Callable[[str], bool]:
    """Does any pattern match a name? A client that did not enable UTF-8 sends
    its patterns in modified UTF-7 (RFC 3501 §5.1.3), so they are matched against
    the names as that client sees them: a pattern that is not valid modified
    UTF-7 simply matches nothing, and wildcards may sit among encoded characters.
    (An 8-bit pattern from such a client is taken as UTF-8, as mailbox names are.)"""
    tests = []
    for pattern in patterns:
        rx = pattern_regex(reference, pattern)
        encoded = not utf8 and (reference + pattern).isascii()
        tests.append((rx, encoded))

    def match(name: str) -> bool:
        shown = None
        for rx, encoded in tests:
            if encoded:
                shown = shown if shown is not None else mutf7.encode(name)
                if rx.match(shown):
                    return True
            elif rx.match(name):
                return True
        return False
    return match


# --- selecting --------------------------------------------------------------------------
def ancestors(name: str) -> Iterable[str]:
    """The levels above a name: a/b/c -> a/b, a."""
    parts = name.split(HIERARCHY)
    for i in range(len(parts) - 1, 0, -1):
        yield HIERARCHY.join(parts[:i])


def listing(cmd: ListCommand, mailboxes: list[Mailbox], subscriptions: list[str],
            match: Callable[[str], bool]) -> list[Listed]:
    """The LIST or LSUB responses for a command, in name order."""
    boxes = {b.name: b for b in mailboxes}
    subscribed = set(subscriptions)
    names = set(boxes) | subscribed
    names |= {a for n in names for a in ancestors(n)}
    with_children = {a for n in boxes for a in ancestors(n)}

    def meets(name: str, criterion: str) -> bool:
        if criterion == "SUBSCRIBED":
            return name in subscribed
        box = boxes.get(name)
        return box is not None and (criterion == "EXISTS" or box.special_use is not None)

    criteria = cmd.criteria or ("EXISTS",)          # a plain LIST lists mailboxes
    selected = {n for n in names if all(meets(n, c) for c in criteria)}
    # Parents of selected names no pattern reaches (RFC 5258 §3.5; example 5.9:
    # a parent whose selected descendants are all listed themselves is not).
    unreached = {a for n in selected if not match(n) for a in ancestors(n)} \
        if cmd.recursive else set()
    out = []
    for name in sorted(names):
        if not match(name) or (name not in selected and name not in unreached):
            continue
        out.append(_entry(cmd, name, boxes.get(name), name in subscribed,
                          name in with_children, name in unreached))
    return out


def _entry(cmd: ListCommand, name: str, box: Mailbox | None, subscribed: bool,
           has_children: bool, unreached: bool) -> Listed:
    if cmd.lsub:
        # RFC 3501 §6.3.9: an unsubscribed level above a subscribed name is
        # returned with \Noselect.
        return Listed(name, box, () if subscribed else ("\\Noselect",))
    attributes = []
    if box is None:
        attributes.append("\\NonExistent")          # RFC 5258 §3: implies \Noselect
    # RFC 5258 §4: children are existing mailboxes, whatever the selection.
    if has_children:
        attributes.append("\\HasChildren")
    elif box is not None:
        attributes.append("\\HasNoChildren")
    if box is not None and box.special_use:         # RFC 6154 §2: MAY always be sent
        attributes.append(box.special_use)
    if subscribed and ("SUBSCRIBED" in cmd.select or "SUBSCRIBED" in cmd.returns):
        attributes.append("\\Subscribed")
    childinfo = cmd.criteria if unreached and "RECURSIVEMATCH" in cmd.select else ()
    return Listed(name, box, tuple(attributes), childinfo)


# --- the responses ----------------------------------------------------------------------
# A STATUS response for a mailbox (RFC 9051 §7.2.4), as the session renders it.
StatusLine = Callable[[Mailbox, list[str]], Awaitable[bytes]]


async def list_responses(cmd: ListCommand, store: MailboxStore, account_id: int, utf8: bool,
                   status_line: StatusLine) -> bytes:
    """The untagged responses of a LIST or LSUB command; names in UTF-8 or modified
    UTF-7 as `utf8` says."""
    if not cmd.lsub and cmd.patterns == ("",) and not cmd.select:
        # RFC 9051 §6.3.9: the hierarchy delimiter and root name.
        return b'* LIST (\\Noselect) "/" ""\r\n'
    verb = "LSUB" if cmd.lsub else "LIST"
    match = name_matcher(cmd.reference, cmd.patterns, utf8)
    out = bytearray()
    mailboxes = await store.mailboxes(account_id)
    subscriptions = await store.subscriptions(account_id)
    for entry in listing(cmd, mailboxes, subscriptions, match):
        out += response_line(verb, entry, render.mailbox_name(entry.name, utf8))
        # RFC 5819 §2: STATUS only for mailboxes that can be selected.
        if cmd.status_items and entry.mailbox is not None:
            out += await status_line(entry.mailbox, list(cmd.status_items))
    return bytes(out)


def response_line(verb: str, entry: Listed, name: bytes) -> bytes:
    """* LIST (attributes) "/" name [("CHILDINFO" (criteria))] (RFC 5258 §6)."""
    line = f"* {verb} ({' '.join(entry.attributes)}) \"{HIERARCHY}\" ".encode() + name
    if entry.childinfo:
        line += b' ("CHILDINFO" ' + render.paren(render.string(c) for c in entry.childinfo) \
            + b")"
    return line + b"\r\n"
