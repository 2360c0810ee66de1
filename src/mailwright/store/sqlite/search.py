"""SEARCH for SQLite: the query tree (store/query.py) compiled to SQL over the message
rows, their metadata and the full-text index (with the texts not yet indexed,
textindex.py); SORT and THREAD keys."""

from __future__ import annotations

import datetime
import json
import sqlite3
import time
from collections.abc import Awaitable, Callable

from .. import query
from ..mailboxes import SYSTEM_FLAGS, normalize_flag
from ..text import HEADER_COLUMNS, TRIGRAM, day_start, fold, header_match, like_contains
from .messages import ranges
from .textindex import Unmade, unmade


def register_functions(conn: sqlite3.Connection) -> None:
    """The SQL functions search uses, on a connection that reads."""
    conn.create_function("header_match", 3, header_match, deterministic=True)


class SQLiteSearch:
    conn: sqlite3.Connection
    _make_texts: Callable[[list[Unmade]], Awaitable[None]]   # meta.py

    async def search(self, mailbox_id: int, key: query.Query) -> list[int]:
        if query.contains(key, query.Text) or query.contains(key, query.Body):
            # Long texts are made after their delivery (textindex.DEFERRED_CHARS):
            # this mailbox's are made now, so the search reads every text.
            await self._make_texts(unmade(self.conn, mailbox_id))
        terms = list(key.keys) if isinstance(key, query.And) else [key]
        driver = next((t for t in terms if _indexed(t)), None)
        if driver is not None:
            # A full-text term among the top-level keys: start from the index's
            # matches (CROSS JOIN fixes the order), reach the messages by blob ("+"
            # keeps SQLite from scanning the mailbox instead), then check the rest;
            # the same from the texts not yet indexed.
            rest = query.And(tuple(t for t in terms if t is not driver))
            needle = fold(driver.text)
            args: list = [_trigrams(needle)]
            found = _contains(driver, needle, args)
            args.append(mailbox_id)
            indexed = (
                f"SELECT m.uid FROM message_text t CROSS JOIN message_meta x "
                f"CROSS JOIN messages m WHERE t.message_text MATCH ? AND {found} "
                f"AND x.id=t.rowid AND m.blob=x.blob AND +m.mailbox_id=? "
                f"AND ({_sql(rest, args)})")
            # Pending texts: this mailbox's only, each read once its message is found.
            args.append(mailbox_id)
            found = _contains(driver, needle, args)
            pending = (
                f"SELECT m.uid FROM message_text_pending p CROSS JOIN message_meta x "
                f"CROSS JOIN messages m CROSS JOIN message_texts t WHERE x.id=p.meta_id "
                f"AND m.blob=x.blob AND +m.mailbox_id=? AND t.meta_id=p.meta_id "
                f"AND {found} AND ({_sql(rest, args)})")
            return [r[0] for r in self.conn.execute(
                f"{indexed} UNION {pending} ORDER BY 1", args)]
        args = [mailbox_id]
        where = _sql(key, args)
        # Flag, UID, size and date searches (most of what clients send) need no metadata.
        join = "LEFT JOIN message_meta x ON x.id=m.meta_id" if "x." in where else ""
        return [r[0] for r in self.conn.execute(
            f"SELECT m.uid FROM messages m {join} WHERE m.mailbox_id=? AND ({where}) "
            f"ORDER BY m.uid", args)]

    async def sort_keys(self, mailbox_id: int, uids: list[int]) -> list[tuple]:
        """(uid, internaldate, size, sent, base_subject, sort_from, sort_to, sort_cc,
        msgid, in_reply_to, refs, subject, display_from, display_to) for SORT and
        THREAD (the row imap/threads.py reads)."""
        out = []
        wanted = set(uids)
        for lo, hi in ranges(uids):
            out += [r for r in self.conn.execute(
                "SELECT m.uid, m.internaldate, m.size, x.sent, x.base_subject, x.sort_from, "
                "x.sort_to, x.sort_cc, x.msgid, x.in_reply_to, x.refs, x.subject, "
                "x.display_from, x.display_to FROM messages m "
                "LEFT JOIN message_meta x ON x.id=m.meta_id WHERE m.mailbox_id=? "
                "AND m.uid BETWEEN ? AND ? ORDER BY m.uid", (mailbox_id, lo, hi))
                if r[0] in wanted]
        return out


# --- SEARCH keys to SQL ------------------------------------------------------------------
# Here the trigram index is FTS5's (store/text.py TRIGRAM), and instr() on the folded
# text keeps the rows that hold the string itself.


def _indexed(key) -> bool:
    """Can the index narrow down this key?"""
    return isinstance(key, query.Text | query.Body) and len(fold(key.text)) >= TRIGRAM


def _trigrams(needle: str) -> str:
    """An FTS5 query for the rows holding every trigram of the needle."""
    grams = dict.fromkeys(needle[i:i + TRIGRAM] for i in range(len(needle) - TRIGRAM + 1))
    return " AND ".join('"' + g.replace('"', '""') + '"' for g in grams)


def _contains(key: query.Text | query.Body, needle: str, args: list) -> str:
    """The condition on a row `t` of message_texts (or the index over it) for a TEXT
    key (the header fields or the body hold the string) or a BODY key (the body)."""
    if isinstance(key, query.Text):
        args += [needle, needle]
        return "(instr(t.hdr, ?) > 0 OR instr(t.body, ?) > 0)"
    args.append(needle)
    return "instr(t.body, ?) > 0"


def _text_sql(key: query.Text | query.Body, args: list) -> str:
    needle = fold(key.text)
    if not needle:
        return "1"                              # the empty string is in every text
    if len(needle) < TRIGRAM:                   # no trigram to look up: scanned
        return (f"EXISTS (SELECT 1 FROM message_texts t WHERE t.meta_id=x.id "
                f"AND {_contains(key, needle, args)})")
    args.append(_trigrams(needle))
    indexed = _contains(key, needle, args)
    # A pending text is read by its id, once its message is found.
    pending = _contains(key, needle, args)
    return (f"(x.id IN (SELECT t.rowid FROM message_text t WHERE t.message_text MATCH ? "
            f"AND {indexed}) OR EXISTS (SELECT 1 FROM message_text_pending p CROSS JOIN "
            f"message_texts t WHERE p.meta_id=x.id AND t.meta_id=x.id AND {pending}))")


def _internaldate_sql(op: str, day: datetime.date, args: list) -> str:
    """BEFORE / ON / SINCE: the internal date's day, disregarding time (RFC 9051
    §6.4.4). The next day starts at its own midnight, not always 24 hours later."""
    start = day_start(day)
    if op == "before":
        args.append(start)
        return "m.internaldate < ?"
    if op == "since":
        args.append(start)
        return "m.internaldate >= ?"
    args += [start, day_start(day + datetime.timedelta(days=1))]
    return "m.internaldate >= ? AND m.internaldate < ?"


_DAY_OPS = {"before": "<", "on": "=", "since": ">="}


def _sent_sql(op: str, day: datetime.date, args: list) -> str:
    """SENTBEFORE / SENTON / SENTSINCE: the Date: field's date as written, time and
    timezone disregarded (RFC 9051 §6.4.4). A message without a valid Date: has no
    such date: it matches none of them (and so matches their NOT)."""
    args.append(day.year * 10000 + day.month * 100 + day.day)
    return f"coalesce(x.sent_day {_DAY_OPS[op]} ?, 0)"


def _header_sql(field: str, text: str, args: list) -> str:
    """HEADER field string: a substring of the field's decoded value; an empty
    string matches every message that has the field (RFC 9051 §6.4.4)."""
    column = HEADER_COLUMNS.get(field)
    if column and text:
        args.append(like_contains(text))
        return f"{column} LIKE ? ESCAPE '\\'"
    args += [field, text]
    return "header_match(x.header, ?, ?)"


def _flag_sql(key: query.Flag, args: list) -> str:
    flag = normalize_flag(key.name)
    if flag in SYSTEM_FLAGS:               # stored in canonical case: an exact match
        args.append(f" {flag} ")
        test = "instr(' ' || m.flags || ' ', ?) > 0"
    else:                                  # keywords match case-insensitively
        args.append(f" {flag.lower()} ")
        test = "instr(lower(' ' || m.flags || ' '), ?) > 0"
    return test if key.present else f"NOT {test}"


def _uids_sql(key: query.Uids, args: list) -> str:
    ranges = key.ranges
    if not ranges:
        return "0"
    if len(ranges) == 1:
        args += list(ranges[0])
        return "m.uid BETWEEN ? AND ?"
    args.append(json.dumps(ranges))
    return ("EXISTS (SELECT 1 FROM json_each(?) j WHERE m.uid BETWEEN "
            "json_extract(j.value, '$[0]') AND json_extract(j.value, '$[1]'))")


def _compare(sql: str, value, args: list) -> str:
    args.append(value)
    return sql


def _sql(key: query.Query, args: list) -> str:
    """The WHERE condition for a query (rows `m` of messages, `x` of message_meta)."""
    match key:
        case query.All():
            return "1"
        case query.And(keys):
            return " AND ".join(f"({_sql(k, args)})" for k in keys) or "1"
        case query.Or(left, right):
            return f"({_sql(left, args)}) OR ({_sql(right, args)})"
        case query.Not(inner):
            return f"NOT ({_sql(inner, args)})"
        case query.Flag():
            return _flag_sql(key, args)
        case query.Uids():
            return _uids_sql(key, args)
        case query.Header(field, text):
            return _header_sql(field, text, args)
        case query.Text() | query.Body():
            return _text_sql(key, args)
        case query.InternalDate(relation, day):
            return _internaldate_sql(relation, day, args)
        case query.SentDate(relation, day):
            return _sent_sql(relation, day, args)
        case query.Larger(octets):
            return _compare("m.size > ?", octets, args)
        case query.Smaller(octets):
            return _compare("m.size < ?", octets, args)
        case query.ModSeq(at_least):
            return _compare("m.modseq >= ?", at_least, args)
        case query.Older(seconds):
            return _compare("m.internaldate <= ?", time.time() - seconds, args)
        case query.Younger(seconds):
            return _compare("m.internaldate >= ?", time.time() - seconds, args)
    raise TypeError(f"not a search query: {key!r}")
