"""SEARCH for PostgreSQL: the query tree (store/query.py) compiled to SQL over the
message rows, their metadata and message_text; SORT and THREAD keys.

The answers are the SQLite backend's (store/sqlite/search.py), key for key: the same
folded text (`fold`), substring semantics, the same ASCII-only case folding where
SQLite's LIKE and lower() fold only ASCII, and HEADER on fields without a column
decided by the same Python function (message/headers.py field_matches); both take
those from store/text.py.
"""

from __future__ import annotations

import datetime
import time

from .. import query
from ..mailboxes import SYSTEM_FLAGS, normalize_flag
from ..text import HEADER_COLUMNS, TRIGRAM, day_start, fold, header_match, like_contains
from .db import Database

# SQLite's LIKE and lower() fold ASCII letters only; so does PostgreSQL's lower() under
# the "C" collation (whatever the database's locale), for the same answers.
_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ASCII_LOWER = str.maketrans(_UPPER, _UPPER.lower())


def _ascii_lower_sql(expr: str) -> str:
    return f'lower(({expr}) COLLATE "C")'


# The header block as text in which ASCII field names read as written (only zero,
# non-ASCII octets and backslashes are escaped): what the HEADER narrowing looks in.
_HEADER_TEXT = "encode(x.header, 'escape')"


class PostgresSearch:
    db: Database

    async def search(self, mailbox_id: int, key: query.Query) -> list[int]:
        args: dict = {"box": mailbox_id}
        where = await _Compiler(self.db, mailbox_id, args).sql(key)
        # Flag, UID, size and date searches (most of what clients send) need no metadata.
        join = "LEFT JOIN message_meta x ON x.id=m.meta_id" if "x." in where else ""
        rows = await self.db.fetchall(
            f"SELECT m.uid FROM messages m {join} WHERE m.mailbox_id=%(box)s AND ({where}) "
            f"ORDER BY m.uid", args)
        return [r[0] for r in rows]

    async def sort_keys(self, mailbox_id: int, uids: list[int]) -> list[tuple]:
        """(uid, internaldate, size, sent, base_subject, sort_from, sort_to, sort_cc,
        msgid, in_reply_to, refs, subject, display_from, display_to) for SORT and
        THREAD (the row imap/threads.py reads)."""
        if not uids:
            return []
        return await self.db.fetchall(
            "SELECT m.uid, m.internaldate, m.size, x.sent, x.base_subject, x.sort_from, "
            "x.sort_to, x.sort_cc, x.msgid, x.in_reply_to, x.refs, x.subject, "
            "x.display_from, x.display_to FROM messages m "
            "LEFT JOIN message_meta x ON x.id=m.meta_id WHERE m.mailbox_id=%s "
            "AND m.uid = ANY(%s::bigint[]) ORDER BY m.uid", (mailbox_id, sorted(set(uids))))


class _Compiler:
    """One query's WHERE condition (rows `m` of messages, `x` of message_meta), its
    values named in `args`."""

    def __init__(self, db: Database, mailbox_id: int, args: dict):
        self.db, self.mailbox_id, self.args = db, mailbox_id, args

    def arg(self, value) -> str:
        name = f"a{len(self.args)}"
        self.args[name] = value
        return f"%({name})s"

    async def sql(self, key: query.Query) -> str:
        match key:
            case query.All():
                return "TRUE"
            case query.And(keys):
                return " AND ".join([f"({await self.sql(k)})" for k in keys]) or "TRUE"
            case query.Or(left, right):
                return f"({await self.sql(left)}) OR ({await self.sql(right)})"
            case query.Not(inner):
                return f"NOT ({await self.sql(inner)})"
            case query.Flag():
                return self.flag(key)
            case query.Uids(ranges):
                return self.uids(ranges)
            case query.Header(field, text):
                return await self.header(field, text)
            case query.Text() | query.Body():
                return self.text(key)
            case query.InternalDate(relation, day):
                return self.internaldate(relation, day)
            case query.SentDate(relation, day):
                # The Date: field's day as written (RFC 9051 §6.4.4); a message
                # without a valid Date: matches none of them (and so their NOT).
                ops = {"before": "<", "on": "=", "since": ">="}
                value = self.arg(day.year * 10000 + day.month * 100 + day.day)
                return f"coalesce(x.sent_day {ops[relation]} {value}, FALSE)"
            case query.Larger(octets):
                return f"m.size > {self.arg(octets)}"
            case query.Smaller(octets):
                return f"m.size < {self.arg(octets)}"
            case query.ModSeq(at_least):
                return f"m.modseq >= {self.arg(at_least)}"
            case query.Older(seconds):
                return f"m.internaldate <= {self.arg(time.time() - seconds)}"
            case query.Younger(seconds):
                return f"m.internaldate >= {self.arg(time.time() - seconds)}"
        raise TypeError(f"not a search query: {key!r}")

    def flag(self, key: query.Flag) -> str:
        flag = normalize_flag(key.name)
        if flag in SYSTEM_FLAGS:               # stored in canonical case: an exact match
            test = f"strpos(' ' || m.flags || ' ', {self.arg(f' {flag} ')}) > 0"
        else:                                  # keywords match case-insensitively
            flags = _ascii_lower_sql("' ' || m.flags || ' '")
            test = f"strpos({flags}, {self.arg(f' {flag.lower()} ')}) > 0"
        return test if key.present else f"NOT ({test})"

    def uids(self, ranges: tuple[tuple[int, int], ...]) -> str:
        if not ranges:
            return "FALSE"
        if len(ranges) == 1:
            return f"m.uid BETWEEN {self.arg(ranges[0][0])} AND {self.arg(ranges[0][1])}"
        lows, highs = self.arg([r[0] for r in ranges]), self.arg([r[1] for r in ranges])
        return (f"EXISTS (SELECT 1 FROM unnest({lows}::bigint[], {highs}::bigint[]) "
                f"r(lo, hi) WHERE m.uid BETWEEN r.lo AND r.hi)")

    async def header(self, field: str, text: str) -> str:
        """HEADER field string: a substring of the field's decoded value; an empty
        string matches every message that has the field (RFC 9051 §6.4.4)."""
        column = HEADER_COLUMNS.get(field)
        if column and text:
            pattern = self.arg(like_contains(text).translate(_ASCII_LOWER))
            return f"{_ascii_lower_sql(column)} LIKE {pattern}"
        # Any other field is decided on the stored header block by field_matches, as
        # in SQLite: the mailbox's messages that may have the field (its name among
        # the header's octets, ASCII case folded: a superset) are read and tested
        # here, once per query, and the UIDs that match go into the SQL.
        narrow, values = "", [self.mailbox_id]
        if field.isascii() and "\\" not in field and "\0" not in field:
            narrow = f"AND strpos({_ascii_lower_sql(_HEADER_TEXT)}, %s) > 0"
            values.append(field.translate(_ASCII_LOWER))
        rows = await self.db.fetchall(
            "SELECT m.uid, x.header FROM messages m JOIN message_meta x ON x.id=m.meta_id "
            f"WHERE m.mailbox_id=%s {narrow}", values)
        matched = [u for u, h in rows if header_match(h, field, text)]
        return f"m.uid = ANY({self.arg(matched)}::bigint[])"

    def text(self, key: query.Text | query.Body) -> str:
        """TEXT: the header fields or the body hold the string; BODY: the body does."""
        needle = fold(key.text)
        if not needle:
            return "TRUE"                       # the empty string is in every text
        columns = ["t.hdr", "t.body"] if isinstance(key, query.Text) else ["t.body"]
        if len(needle) >= TRIGRAM:
            value = self.arg(like_contains(needle))
            # pg_trgm's GIN indexes answer LIKE: the rows holding every trigram of
            # the string, then the pattern checked on them; substring semantics.
            found = " OR ".join(f"{c} LIKE {value}" for c in columns)
        else:                                   # no trigram to look up: a scan
            value = self.arg(needle)
            found = " OR ".join(f"strpos({c}, {value}) > 0" for c in columns)
        return f"m.meta_id IN (SELECT t.meta_id FROM message_text t WHERE {found})"

    def internaldate(self, relation: str, day: datetime.date) -> str:
        """BEFORE / ON / SINCE: the internal date's day, disregarding time (RFC 9051
        §6.4.4), in the server's zone; the next day starts at its own midnight."""
        start = self.arg(day_start(day))
        if relation == "before":
            return f"m.internaldate < {start}"
        if relation == "since":
            return f"m.internaldate >= {start}"
        end = self.arg(day_start(day + datetime.timedelta(days=1)))
        return f"m.internaldate >= {start} AND m.internaldate < {end}"
