"""SORT and THREAD (RFC 5256, RFC 5957 DISPLAY) over the sort keys kept at delivery
(made by message/keys.py: base subject, first address's mailbox or display value,
collated in i;unicode-casemap).

A key row is (uid, internaldate, size, sent, base_subject, sort_from, sort_to,
sort_cc, msgid, in_reply_to, refs, subject, display_from, display_to); the string
sort keys are stored already collated, `subject` is the decoded Subject.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ..message.keys import base_subject
from .parser import ParseError, Reader

(UID, ARRIVAL, SIZE, SENT, SUBJECT, FROM, TO, CC, MSGID, IN_REPLY_TO, REFS, RAW_SUBJECT,
 DISPLAYFROM, DISPLAYTO) = range(14)
SORT_KEYS = {"ARRIVAL": ARRIVAL, "CC": CC, "DATE": SENT, "FROM": FROM, "SIZE": SIZE,
             "SUBJECT": SUBJECT, "TO": TO, "DISPLAYFROM": DISPLAYFROM,
             "DISPLAYTO": DISPLAYTO}
_MSGID = re.compile(r"<[^<>\s]+>")


# --- SORT ----------------------------------------------------------------------------
def parse_sort_criteria(r: Reader) -> list[tuple[int, bool]]:
    words = r.list_of(r.atom)
    out = []
    reverse = False
    for word in (w.upper() for w in words):
        if word == "REVERSE":
            reverse = True
            continue
        if word not in SORT_KEYS:
            raise ParseError(f"unknown sort key {word}")
        out.append((SORT_KEYS[word], reverse))
        reverse = False
    if not out or reverse:
        raise ParseError("sort criteria incomplete")
    return out


def _date(row: tuple) -> float:
    # RFC 5256 §2.2: a message without a valid Date: sorts by its internal date.
    return row[SENT] if row[SENT] is not None else row[ARRIVAL]


def _value(row: tuple, key: int):
    if key == SENT:
        return _date(row)
    value = row[key]
    return value if value is not None else ""


def sort(rows: list[tuple], criteria: list[tuple[int, bool]]) -> list[int]:
    """UIDs in order; ties fall back to the sequence (= UID) order (RFC 5256 §3),
    also under REVERSE, which reverses only its own key."""
    ordered = sorted(rows, key=lambda r: r[UID])
    for key, reverse in reversed(criteria):
        ordered.sort(key=lambda r, k=key: _value(r, k), reverse=reverse)
    return [r[UID] for r in ordered]


# --- THREAD ----------------------------------------------------------------------------
@dataclass(eq=False)
class Node:
    uid: int | None                      # None: a dummy, for a message not in the set
    date: float = 0.0
    children: list[Node] = field(default_factory=list)
    parent: Node | None = None
    row: tuple | None = None

    def sort_key(self) -> tuple[float, int]:
        """Sent date, then sequence order (RFC 5256 §2.2); a dummy sorts as its
        first child (RFC 5256 §4, REFERENCES steps 4 and 6)."""
        if self.uid is not None or not self.children:
            return self.date, self.uid or 0
        return self.children[0].sort_key()


def thread(rows: list[tuple], algorithm: str) -> list[Node]:
    if algorithm == "ORDEREDSUBJECT":
        return _ordered_subject(rows)
    return _references(rows)


def _ordered_subject(rows: list[tuple]) -> list[Node]:
    """RFC 5256 §4 ORDEREDSUBJECT: by base subject, then date; the first message
    of each group is the parent of the others."""
    groups: dict[str, list[tuple]] = {}
    for row in sorted(rows, key=lambda r: (_date(r), r[UID])):
        groups.setdefault(row[SUBJECT] or "", []).append(row)
    roots = []
    for members in groups.values():
        root = Node(members[0][UID], _date(members[0]))
        root.children = [Node(m[UID], _date(m), parent=root) for m in members[1:]]
        roots.append(root)
    roots.sort(key=Node.sort_key)
    return roots


def _references(rows: list[tuple]) -> list[Node]:
    """RFC 5256 §4 REFERENCES (after Zawinski)."""
    roots = _link_by_references(rows)                       # steps 1 and 2
    roots = _prune(roots, top=True)                         # step 3
    for node in roots:                                      # step 4
        if node.uid is None:
            node.children.sort(key=Node.sort_key)
    roots.sort(key=Node.sort_key)
    roots = _gather_by_subject(roots)                       # step 5
    _sort_tree(roots)                                       # step 6
    return roots


def _normal_msgid(msgid: str) -> str:
    """RFC 5256 §4: msg-ids compare after normalizing quoting, so
    <"01KF8JCEOCBS0045PS"@xxx.yyy.com> is <01KF8JCEOCBS0045PS@xxx.yyy.com>."""
    return re.sub(r"\\(.)", r"\1", msgid.replace('"', ""))


def _msgids(value: str | None) -> list[str]:
    return [_normal_msgid(m) for m in _MSGID.findall(value or "")]


def _link_by_references(rows: list[tuple]) -> list[Node]:
    table: dict[str, Node] = {}
    for row in sorted(rows, key=lambda r: r[UID]):
        # A message without a Message-ID, or with one an earlier message has,
        # gets a unique one (RFC 5256 §4 step 1).
        own = _msgids(row[MSGID])[:1]
        key = own[0] if own and (own[0] not in table or table[own[0]].uid is None) \
            else f"uid {row[UID]}"
        node = table.setdefault(key, Node(None))
        node.uid, node.date, node.row = row[UID], _date(row), row
        # References, or else the first msg-id of In-Reply-To.
        refs = _msgids(row[REFS]) or _msgids(row[IN_REPLY_TO])[:1]
        parent = None
        for ref in refs:                  # (1)(A): each reference the parent of the next
            ref_node = table.setdefault(ref, Node(None))
            if parent is not None and ref_node.parent is None \
                    and not _is_ancestor(ref_node, parent):
                _link(parent, ref_node)
            parent = ref_node
        if node.parent is not None:       # (1)(B): the last reference is the parent
            _unlink(node)
        if parent is not None and not _is_ancestor(node, parent):
            _link(parent, node)
    return [n for n in table.values() if n.parent is None]


def _is_ancestor(node: Node, other: Node | None) -> bool:
    """Is `node` an ancestor of `other` (or the same)?"""
    while other is not None:
        if other is node:
            return True
        other = other.parent
    return False


def _link(parent: Node, child: Node) -> None:
    child.parent = parent
    parent.children.append(child)


def _unlink(node: Node) -> None:
    if node.parent is not None:
        node.parent.children.remove(node)
        node.parent = None


def _prune(nodes: list[Node], top: bool) -> list[Node]:
    """Step 3: drop dummies without children; replace the others by their children,
    except a dummy at the top with more than one child."""
    out = []
    for node in nodes:
        node.children = _prune(node.children, top=False)
        for c in node.children:
            c.parent = node
        if node.uid is None:
            if not node.children:
                continue
            if not top or len(node.children) == 1:
                for c in node.children:
                    c.parent = None if top else node.parent
                out += node.children
                continue
        out.append(node)
    return out


def _thread_subject(node: Node) -> tuple[str, bool]:
    """Step 5 (B)(i): the base subject of the message, or of a dummy's first child;
    and whether that message is a reply or forward."""
    message = node if node.uid is not None or not node.children else node.children[0]
    if message.row is None:
        return "", False
    reply = base_subject(message.row[RAW_SUBJECT] or "")[1]
    return message.row[SUBJECT] or "", reply


def _gather_by_subject(roots: list[Node]) -> list[Node]:
    """Step 5: threads whose first messages share a base subject are merged."""
    subjects = {node: _thread_subject(node) for node in roots}
    table: dict[str, Node] = {}
    for node in roots:                                      # (B) the subject table
        subject, reply = subjects[node]
        if not subject:
            continue
        other = table.get(subject)
        if other is None or (other.uid is not None and (
                node.uid is None or (subjects[other][1] and not reply))):
            table[subject] = node
    dropped: set[Node] = set()
    made: list[Node] = []
    for node in roots:                                      # (C) merging
        subject, reply = subjects[node]
        other = table.get(subject) if subject else None
        if other is None or other is node or node.parent is not None:
            continue
        if node.uid is None and other.uid is None:
            for c in node.children:       # both dummies: the children become siblings
                _link(other, c)
            node.children = []
            dropped.add(node)
        elif other.uid is None or (reply and not subjects[other][1]):
            _link(other, node)            # under the dummy, or a reply under the original
        else:
            holder = Node(None)           # otherwise: both under a new dummy
            _link(holder, other)
            _link(holder, node)
            table[subject] = holder
            made.append(holder)
    return [n for n in roots + made if n.parent is None and n not in dropped]


def _sort_tree(nodes: list[Node]) -> None:
    """Step 6: every set of siblings by sent date, children before their parents'
    level (a dummy sorts as its first child)."""
    for n in nodes:
        _sort_tree(n.children)
    nodes.sort(key=Node.sort_key)


def render_threads(roots: list[Node], number: Callable[[int], int | None]) -> bytes:
    return "".join(f"({_render(n, number)})" for n in roots).encode()


def _render(node: Node, number: Callable[[int], int | None]) -> str:
    head = str(number(node.uid)) if node.uid is not None else ""
    if not node.children:
        return head
    if len(node.children) == 1:
        tail = _render(node.children[0], number)
        return f"{head} {tail}" if head else f"({tail})"
    kids = "".join(f"({_render(c, number)})" for c in node.children)
    return f"{head} {kids}" if head else kids
