"""SORT and THREAD (RFC 5256) over the sort keys kept at delivery.

A key row is (uid, internaldate, size, sent, base_subject, sort_from, sort_to,
sort_cc, msgid, in_reply_to, refs).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from .parser import ParseError, Reader

UID, ARRIVAL, SIZE, SENT, SUBJECT, FROM, TO, CC, MSGID, IN_REPLY_TO, REFS = range(11)
SORT_KEYS = {"ARRIVAL": ARRIVAL, "CC": CC, "DATE": SENT, "FROM": FROM, "SIZE": SIZE,
             "SUBJECT": SUBJECT, "TO": TO, "DISPLAY": FROM}
_MSGID = re.compile(r"<[^<>\s]+>")


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
    """UIDs in order; ties fall back to the sequence (= UID) order."""
    ordered = sorted(rows, key=lambda r: r[UID])
    for key, reverse in reversed(criteria):
        ordered.sort(key=lambda r, k=key: _value(r, k), reverse=reverse)
    return [r[UID] for r in ordered]


@dataclass
class Node:
    uid: int | None                      # None: a placeholder for a missing message
    date: float = 0.0
    children: list[Node] = field(default_factory=list)
    parent: Node | None = None
    row: tuple | None = None

    def first_date(self) -> float:
        if self.uid is not None:
            return self.date
        return min((c.first_date() for c in self.children), default=0.0)


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
    roots.sort(key=lambda n: (n.date, n.uid))
    return roots


def _references(rows: list[tuple]) -> list[Node]:
    """RFC 5256 §4 REFERENCES (after Zawinski): link messages by Message-ID,
    References and In-Reply-To, prune placeholders, gather roots by subject."""
    table: dict[str, Node] = {}
    for row in sorted(rows, key=lambda r: r[UID]):
        key = row[MSGID]
        if not key or (key in table and table[key].uid is not None):   # none, or a duplicate
            key = f"<uid-{row[UID]}@mailwright>"
        node = table.setdefault(key, Node(None))
        node.uid, node.date, node.row = row[UID], _date(row), row
        refs = _MSGID.findall(row[REFS] or "") or _MSGID.findall(row[IN_REPLY_TO] or "")[:1]
        parent = None
        for ref in refs:
            ref_node = table.setdefault(ref, Node(None))
            if parent is not None and ref_node.parent is None and parent is not ref_node \
                    and not _is_ancestor(ref_node, parent):
                _link(parent, ref_node)
            parent = ref_node
        if node.parent is not None:
            node.parent.children.remove(node)
            node.parent = None
        if parent is not None and parent is not node and not _is_ancestor(node, parent):
            _link(parent, node)
    roots = [n for n in table.values() if n.parent is None]
    roots = _prune(roots, top=True)
    roots = _gather_by_subject(roots)
    _sort_tree(roots)
    return roots


def _is_ancestor(node: Node, other: Node) -> bool:
    """Is `node` an ancestor of `other` (or the same)?"""
    while other is not None:
        if other is node:
            return True
        other = other.parent
    return False


def _link(parent: Node, child: Node) -> None:
    child.parent = parent
    parent.children.append(child)


def _prune(nodes: list[Node], top: bool) -> list[Node]:
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
                    c.parent = node.parent
                out += node.children
                continue
        out.append(node)
    return out


def _subject(node: Node) -> str:
    if node.row is not None:
        return node.row[SUBJECT] or ""
    return next((_subject(c) for c in node.children if _subject(c)), "")


def _is_reply(node: Node) -> bool:
    return node.row is not None and bool(node.row[IN_REPLY_TO] or node.row[REFS])


def _gather_by_subject(roots: list[Node]) -> list[Node]:
    by_subject: dict[str, Node] = {}
    out: list[Node] = []
    for node in roots:
        subject = _subject(node)
        other = by_subject.get(subject) if subject else None
        if other is None:
            if subject:
                by_subject[subject] = node
            out.append(node)
            continue
        if other.uid is None and node.uid is None:
            for c in node.children:
                _link(other, c)
        elif other.uid is None:
            _link(other, node)
        elif node.uid is not None and _is_reply(node) and not _is_reply(other):
            _link(other, node)
        else:
            holder = Node(None)
            out[out.index(other)] = holder
            _link(holder, other)
            _link(holder, node)
            by_subject[subject] = holder
    return out


def _sort_tree(nodes: list[Node]) -> None:
    nodes.sort(key=lambda n: (n.first_date(), n.uid or 0))
    for n in nodes:
        _sort_tree(n.children)


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
