"""What a mailbox search asks for, as a small typed tree, protocol-neutral.

The keys are those of IMAP SEARCH (RFC 9051 §6.4.4), MODSEQ (RFC 7162 §3.1.5) and
WITHIN (RFC 5032); imap/search.py builds the tree (turning sequence numbers, \\Recent
and "$" into UID sets first), a backend compiles it to its own query language
(store/sqlite/search.py: SQL and the full-text index).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Literal

# A day relation: the day is before the given one, the same day, or that day or later.
Relation = Literal["before", "on", "since"]


@dataclass(frozen=True)
class All:
    """Every message."""


@dataclass(frozen=True)
class And:
    keys: tuple[Query, ...]


@dataclass(frozen=True)
class Or:
    left: Query
    right: Query


@dataclass(frozen=True)
class Not:
    key: Query


@dataclass(frozen=True)
class Flag:
    """A system flag (matched in its canonical case) or a keyword (case-insensitively)."""
    name: str
    present: bool = True


@dataclass(frozen=True)
class Header:
    """A substring of a header field's decoded value; "" matches any message with the field."""
    field: str                    # lower case
    text: str


@dataclass(frozen=True)
class Text:
    """A substring of the header fields or the body."""
    text: str


@dataclass(frozen=True)
class Body:
    """A substring of the body."""
    text: str


@dataclass(frozen=True)
class InternalDate:
    """The day the message arrived, time disregarded (in the server's zone)."""
    relation: Relation
    day: datetime.date


@dataclass(frozen=True)
class SentDate:
    """The Date: field's day as written, time and zone disregarded; a message without
    a valid Date: matches no relation."""
    relation: Relation
    day: datetime.date


@dataclass(frozen=True)
class Larger:
    octets: int


@dataclass(frozen=True)
class Smaller:
    octets: int


@dataclass(frozen=True)
class Uids:
    """UIDs in any of the (low, high) ranges, both ends included."""
    ranges: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class ModSeq:
    """Messages whose MODSEQ is at least this."""
    at_least: int


@dataclass(frozen=True)
class Older:
    """Arrived at least this many seconds ago."""
    seconds: int


@dataclass(frozen=True)
class Younger:
    """Arrived at most this many seconds ago."""
    seconds: int


Query = (All | And | Or | Not | Flag | Header | Text | Body | InternalDate | SentDate
         | Larger | Smaller | Uids | ModSeq | Older | Younger)


def children(key) -> tuple:
    """The keys directly under a key (none for a leaf)."""
    if isinstance(key, And):
        return key.keys
    if isinstance(key, Or):
        return (key.left, key.right)
    if isinstance(key, Not):
        return (key.key,)
    return ()


def contains(key, kind: type) -> bool:
    """Does the tree hold a key of this type?"""
    return isinstance(key, kind) or any(contains(k, kind) for k in children(key))
