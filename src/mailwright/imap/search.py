"""SEARCH keys (RFC 9051 §6.4.4, RFC 3501 §6.4.4, RFC 7162 MODSEQ, RFC 5032 WITHIN),
parsed into the store's query tree (store/query.py).

Three keys only the session can answer: message sequence numbers (`Sequence`), UID
sets that may name "$" or "*" (`UidSequence`) and \\Recent (`Recent`). They stay in
the tree as parsed; the session turns them into `query.Uids` before the store
searches (see `resolve`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..store import query as q
from .parser import ParseError, Reader, SequenceSet

_FLAG_KEYS = {
    "ANSWERED": ("\\Answered", True), "DELETED": ("\\Deleted", True),
    "DRAFT": ("\\Draft", True), "FLAGGED": ("\\Flagged", True), "SEEN": ("\\Seen", True),
    "UNANSWERED": ("\\Answered", False), "UNDELETED": ("\\Deleted", False),
    "UNDRAFT": ("\\Draft", False), "UNFLAGGED": ("\\Flagged", False),
    "UNSEEN": ("\\Seen", False),
}
_HEADER_KEYS = {"BCC": "bcc", "CC": "cc", "FROM": "from", "SUBJECT": "subject", "TO": "to"}
_DATE_KEYS = {
    "BEFORE": (q.InternalDate, "before"), "ON": (q.InternalDate, "on"),
    "SINCE": (q.InternalDate, "since"), "SENTBEFORE": (q.SentDate, "before"),
    "SENTON": (q.SentDate, "on"), "SENTSINCE": (q.SentDate, "since"),
}
CHARSETS = ("UTF-8", "US-ASCII")
MAX_DEPTH = 64


class BadCharset(Exception):
    pass


@dataclass(frozen=True)
class Sequence:
    """Message sequence numbers (as parsed: may hold "*" and "$")."""
    numbers: SequenceSet


@dataclass(frozen=True)
class UidSequence:
    """UIDs (as parsed: may hold "*" and "$")."""
    numbers: SequenceSet


@dataclass(frozen=True)
class Recent:
    """\\Recent: the messages this session was told are recent (RFC 3501 §2.3.2)."""


def parse_program(r: Reader, charset_keyword: bool = True) -> list:
    """[CHARSET name SP] key *(SP key): the keys, all of which must match. SORT and
    THREAD name the charset first, without the CHARSET keyword (RFC 5256 §3)."""
    if not charset_keyword or r.accept(b"CHARSET "):
        charset = r.astr().upper()
        if charset not in CHARSETS:
            raise BadCharset(charset)
        r.sp()
    keys = [parse_key(r, 0)]
    while not r.at_end() and r.peek() == b" ":
        r.sp()
        keys.append(parse_key(r, 0))
    r.end()
    return keys


def parse_key(r: Reader, depth: int):
    if depth > MAX_DEPTH:
        raise ParseError("search keys nested too deeply")
    if r.open():
        keys = [parse_key(r, depth + 1)]
        while not r.close():
            r.sp()
            keys.append(parse_key(r, depth + 1))
        return q.And(tuple(keys))
    if r.is_sequence_set_next():
        return Sequence(r.sequence_set())
    word = r.atom().upper()
    if word == "ALL":
        return q.All()
    if word in _FLAG_KEYS:
        return q.Flag(*_FLAG_KEYS[word])
    if word in ("KEYWORD", "UNKEYWORD"):
        r.sp()
        return q.Flag(r.atom(), word == "KEYWORD")
    if word in _HEADER_KEYS:
        r.sp()
        return q.Header(_HEADER_KEYS[word], r.astr())
    if word == "HEADER":
        r.sp()
        name = r.astr()
        r.sp()
        return q.Header(name.lower(), r.astr())
    if word == "TEXT":
        r.sp()
        return q.Text(r.astr())
    if word == "BODY":
        r.sp()
        return q.Body(r.astr())
    if word in _DATE_KEYS:
        r.sp()
        kind, relation = _DATE_KEYS[word]
        return kind(relation, r.date())
    if word == "LARGER":
        r.sp()
        return q.Larger(r.number())
    if word == "SMALLER":
        r.sp()
        return q.Smaller(r.number())
    if word == "OLDER":                           # RFC 5032 WITHIN
        r.sp()
        return q.Older(r.nz_number())
    if word == "YOUNGER":
        r.sp()
        return q.Younger(r.nz_number())
    if word == "NOT":
        r.sp()
        return q.Not(parse_key(r, depth + 1))
    if word == "OR":
        r.sp()
        a = parse_key(r, depth + 1)
        r.sp()
        return q.Or(a, parse_key(r, depth + 1))
    if word == "UID":
        r.sp()
        return UidSequence(r.sequence_set())
    if word == "RECENT":
        return Recent()
    if word == "OLD":
        return q.Not(Recent())
    if word == "NEW":
        return q.And((Recent(), q.Flag("\\Seen", False)))
    if word == "MODSEQ":                          # RFC 7162 §3.1.5
        r.sp()
        if r.peek() == b'"':
            r.quoted()                            # entry name: per-flag MODSEQs not kept
            r.sp()
            r.atom()                              # entry type: priv / shared / all
            r.sp()
        return q.ModSeq(r.number())
    raise ParseError(f"unknown search key {word}")


def resolve(key, uids: Callable[[Sequence | UidSequence | Recent], q.Uids]):
    """The tree with every session key (Sequence, UidSequence, Recent) replaced by the
    `query.Uids` that `uids` gives for it: what the store can search."""
    if isinstance(key, Sequence | UidSequence | Recent):
        return uids(key)
    if isinstance(key, q.And):
        return q.And(tuple(resolve(k, uids) for k in key.keys))
    if isinstance(key, q.Or):
        return q.Or(resolve(key.left, uids), resolve(key.right, uids))
    if isinstance(key, q.Not):
        return q.Not(resolve(key.key, uids))
    return key
