"""MailboxStore for SQLiteStore: mailboxes, messages by UID, flags and MODSEQ,
expunge tombstones, search, sort keys and quota (a mixin: it uses the store's
read connection `conn` and its writer thread)."""

from __future__ import annotations

import asyncio
import datetime
import json
import re
import sqlite3
import time
import unicodedata
from dataclasses import dataclass
from importlib import resources

from ..address import AddressError, parse_mailbox
from ..message.headers import field_matches
from ..message.meta import MessageMeta, parse_message
from . import query
from .base import StoreError
from .mailboxes import (
    HIERARCHY,
    SYSTEM_FLAGS,
    FetchViews,
    Mailbox,
    MailboxCounts,
    MailboxError,
    MessageData,
    MessageState,
    OverQuota,
    Quota,
    RenderViews,
    normalize_flag,
)

_MAILBOX_COLUMNS = "id, name, special_use, uidvalidity, uidnext, highestmodseq, recent_uid"
MAX_MAILBOXES = 1000             # per account
MAX_SUBSCRIPTIONS = 1000         # per account
MAX_NAME = 512                   # octets, UTF-8


# What a message's parse stores changes with the parser: message_meta rows carry the
# version that made them, and the start-up backfill parses older rows again.
# 1: Date's day as written, display sort keys, collated sort keys, RFC 5256 base
#    subject, address search text, every header field in the trigram text index.
META_VERSION = 1
_META_COLUMNS = ("envelope", "body", "bodystructure", "structure", "header", "sent",
                 "sent_day", "subject", "base_subject", "from_", "to_", "cc", "bcc",
                 "sort_from", "sort_to", "sort_cc", "display_from", "display_to", "msgid",
                 "in_reply_to", "refs", "version")


# A message's parse and the FETCH views rendered from it: what message_meta keeps.
Indexed = tuple[MessageMeta, FetchViews]


def _meta_values(indexed: Indexed) -> tuple:
    """The message_meta values of a parse, in _META_COLUMNS order."""
    m, v = indexed
    return (v.envelope, v.body, v.bodystructure, m.structure_json(), m.header, m.sent,
            m.sent_day, m.subject, m.base_subject, m.from_, m.to, m.cc, m.bcc, m.sort_from,
            m.sort_to, m.sort_cc, m.display_from, m.display_to, m.message_id,
            m.in_reply_to, m.references, META_VERSION)


def _index_text(c: sqlite3.Connection, meta_id: int, m: MessageMeta) -> None:
    # OR REPLACE: a stale index row under a reused rowid must not fail the delivery
    c.execute("INSERT OR REPLACE INTO message_text (rowid, hdr, body) VALUES (?,?,?)",
              (meta_id, fold(m.header_text), fold(m.text)))


# Combining diacritical marks (the blocks for Latin, Greek, Cyrillic and symbols).
_MARKS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")


def fold(text: str) -> str:
    """What the text index holds and is asked for: case folded (SEARCH matching is
    case-insensitive, RFC 9051 §6.4.4) and diacritics taken off, so "cafe" finds
    "Café" (flexible matching, which RFC 9051 allows for TEXT and BODY). Composed
    again afterwards (NFC), so letters that decompose without marks (Hangul) are
    stored as written."""
    if text.isascii():
        return text.lower()
    bare = _MARKS.sub("", unicodedata.normalize("NFKD", text.casefold()))
    return unicodedata.normalize("NFC", bare)


def ensure_meta(c: sqlite3.Connection, digest: str, indexed: Indexed) -> int:
    """Store a message's parse once per blob (FETCH views, sort and search keys, the
    full-text index); its message_meta id. A copy of a stored blob finds it done.
    The parse is made before the writer job, on the loop or in a thread: parsing
    here, on the writer thread, would hold the GIL against the loop for the whole
    batch."""
    row = c.execute("SELECT id FROM message_meta WHERE blob=?", (digest,)).fetchone()
    if row:
        return row[0]
    marks = ",".join("?" * (len(_META_COLUMNS) + 1))
    cur = c.execute(f"INSERT INTO message_meta (blob, {', '.join(_META_COLUMNS)}) "
                    f"VALUES ({marks})", (digest, *_meta_values(indexed)))
    _index_text(c, cur.lastrowid, indexed[0])
    return cur.lastrowid


def _meta_job(items: list[tuple[str, Indexed]]):
    def job(c: sqlite3.Connection) -> None:
        for digest, indexed in items:
            c.execute("UPDATE messages SET meta_id=? WHERE blob=? AND meta_id IS NULL",
                      (ensure_meta(c, digest, indexed), digest))
    return job


def _reparse_job(items: list[tuple[int, Indexed]]):
    """Replace the stored parse of older metadata rows by a new one."""
    assignments = ", ".join(f"{column}=?" for column in _META_COLUMNS)

    def job(c: sqlite3.Connection) -> None:
        for meta_id, indexed in items:
            # The row may have gone (its last message expunged) since it was read.
            if c.execute(f"UPDATE message_meta SET {assignments} WHERE id=?",
                         (*_meta_values(indexed), meta_id)).rowcount:
                _index_text(c, meta_id, indexed[0])
    return job


def drop_meta(c: sqlite3.Connection, digest: str) -> None:
    row = c.execute("SELECT id FROM message_meta WHERE blob=?", (digest,)).fetchone()
    if row:
        c.execute("DELETE FROM message_text WHERE rowid=?", row)
        c.execute("DELETE FROM message_meta WHERE id=?", row)


def header_match(header: bytes | None, field: str, text: str) -> bool:
    """SEARCH HEADER field text (RFC 9051 §6.4.4): a substring of that field's
    decoded value, case-insensitively; an empty text matches any such field."""
    return header is not None and field_matches(header, field, text)


def valid_name(name: str) -> str | None:
    """Why a mailbox name cannot be created, or None."""
    if not name or len(name.encode()) > MAX_NAME:
        return "Mailbox name empty or too long"
    parts = name.split(HIERARCHY)
    if any(not p for p in parts):
        return "Empty hierarchy level in mailbox name"
    if any(c in name for c in "*%") or any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return "Mailbox name contains wildcards or control characters"
    return None


def canonical_name(name: str) -> str:
    """INBOX is case-insensitive (RFC 9051 §5.1), also as a hierarchy's first level."""
    head, sep, rest = name.partition(HIERARCHY)
    if head.upper() == "INBOX":
        return "INBOX" + sep + rest
    return name


class SQLiteMailboxes:
    conn: sqlite3.Connection
    render_views: RenderViews        # given by the composition root (imap/fetch.py)

    def _index(self, content: bytes) -> Indexed:
        """A message's parse and its FETCH views, made once per stored blob."""
        meta = parse_message(content)
        return meta, self.render_views(content, meta)

    def _init_mailboxes(self, conn: sqlite3.Connection) -> None:
        conn.create_function("header_match", 3, header_match, deterministic=True)
        # mailbox id -> ((UIDNEXT, HIGHESTMODSEQ), counts at that version)
        self._counts_cache: dict[int, tuple] = {}
        _adopt_legacy_subscriptions(conn)
        _adopt_text_index(conn)

    # --- mailboxes --------------------------------------------------------------
    def account_id(self, account: str) -> int | None:
        try:
            key = parse_mailbox(account).key
        except AddressError:
            return None
        row = self.conn.execute("SELECT id FROM accounts WHERE lookup=?", (key,)).fetchone()
        return row[0] if row else None

    def mailboxes(self, account_id: int) -> list[Mailbox]:
        rows = self.conn.execute(f"SELECT {_MAILBOX_COLUMNS} FROM mailboxes WHERE account_id=? "
                                 "ORDER BY name", (account_id,))
        return [Mailbox(*r) for r in rows]

    def mailbox(self, account_id: int, name: str) -> Mailbox | None:
        r = self.conn.execute(f"SELECT {_MAILBOX_COLUMNS} FROM mailboxes WHERE account_id=? "
                              "AND name=?", (account_id, canonical_name(name))).fetchone()
        return Mailbox(*r) if r else None

    def mailbox_by_id(self, mailbox_id: int) -> Mailbox | None:
        r = self.conn.execute(f"SELECT {_MAILBOX_COLUMNS} FROM mailboxes WHERE id=?",
                              (mailbox_id,)).fetchone()
        return Mailbox(*r) if r else None

    def mailbox_counts(self, mailbox_id: int) -> MailboxCounts:
        # Every change to a mailbox moves its UIDNEXT or HIGHESTMODSEQ, so counts
        # computed at one (UIDNEXT, HIGHESTMODSEQ) hold until either moves: STATUS
        # of a large, quiet mailbox costs one indexed lookup, not a scan.
        version = self.mailbox_versions([mailbox_id]).get(mailbox_id)
        cache = self._counts_cache
        hit = cache.get(mailbox_id)
        if hit is not None and hit[0] == version:
            return hit[1]
        counts = self._count(mailbox_id)
        if len(cache) > 10_000:
            cache.clear()
        cache[mailbox_id] = (version, counts)
        return counts

    def _count(self, mailbox_id: int) -> MailboxCounts:
        row = self.conn.execute(
            "SELECT count(*), "
            "coalesce(sum(instr(' ' || flags || ' ', ' \\Seen ') = 0), 0), "
            "coalesce(sum(instr(' ' || flags || ' ', ' \\Deleted ') > 0), 0), "
            "coalesce(sum(size), 0) FROM messages WHERE mailbox_id=?", (mailbox_id,)).fetchone()
        return MailboxCounts(*row)

    def mailbox_versions(self, mailbox_ids: list[int]) -> dict[int, tuple[int, int]]:
        if not mailbox_ids:
            return {}
        marks = ",".join("?" * len(mailbox_ids))
        rows = self.conn.execute(f"SELECT id, uidnext, highestmodseq FROM mailboxes "
                                 f"WHERE id IN ({marks})", mailbox_ids)
        return {r[0]: (r[1], r[2]) for r in rows}

    async def create_mailbox(self, account_id: int, name: str,
                             special_use: str | None = None) -> Mailbox:
        name = canonical_name(name)
        if why := valid_name(name):
            raise MailboxError(why, "CANNOT")

        def job(c: sqlite3.Connection) -> None:
            if c.execute("SELECT 1 FROM mailboxes WHERE account_id=? AND name=?",
                         (account_id, name)).fetchone():
                raise MailboxError("Mailbox already exists", "ALREADYEXISTS")
            if c.execute("SELECT count(*) FROM mailboxes WHERE account_id=?",
                         (account_id,)).fetchone()[0] >= MAX_MAILBOXES:
                raise MailboxError("Too many mailboxes", "LIMIT")
            if special_use and c.execute(
                    "SELECT 1 FROM mailboxes WHERE account_id=? AND special_use=?",
                    (account_id, special_use)).fetchone():
                raise MailboxError(f"A {special_use} mailbox exists already", "USEATTR")
            # RFC 9051 §6.3.4: superior hierarchy names are created as needed.
            levels = name.split(HIERARCHY)
            for i in range(1, len(levels) + 1):
                path = HIERARCHY.join(levels[:i])
                c.execute("INSERT OR IGNORE INTO mailboxes (account_id, name, special_use, "
                          "uidvalidity) VALUES (?,?,?,?)",
                          (account_id, path, special_use if i == len(levels) else None,
                           _new_uidvalidity(c)))
        await self._writer.submit_async(job)
        found = self.mailbox(account_id, name)
        assert found is not None
        return found

    async def delete_mailbox(self, account_id: int, name: str) -> None:
        name = canonical_name(name)
        if name == "INBOX":
            raise MailboxError("INBOX cannot be deleted", "CANNOT")

        def job(c: sqlite3.Connection) -> list[str]:
            row = c.execute("SELECT id, uidvalidity FROM mailboxes WHERE account_id=? "
                            "AND name=?", (account_id, name)).fetchone()
            if row is None:
                raise MailboxError("No such mailbox", "NONEXISTENT")
            # RFC 9051 §6.3.5: a mailbox with inferiors keeps its name as a
            # placeholder; we refuse instead of leaving a \Noselect level behind.
            if c.execute("SELECT 1 FROM mailboxes WHERE account_id=? AND name LIKE ? "
                         "ESCAPE '\\'", (account_id, _like_prefix(name))).fetchone():
                raise MailboxError("Mailbox has child mailboxes; delete them first",
                                   "INUSE")
            blobs = [r[0] for r in c.execute("SELECT DISTINCT blob FROM messages "
                                             "WHERE mailbox_id=?", row[:1])]
            _retire_uidvalidity(c, row[1])
            c.execute("DELETE FROM mailboxes WHERE id=?", row[:1])
            return self._release(c, blobs)
        await self._unlink(await self._writer.submit_async(job))

    async def rename_mailbox(self, account_id: int, old: str, new: str) -> None:
        old, new = canonical_name(old), canonical_name(new)
        if why := valid_name(new):
            raise MailboxError(why, "CANNOT")

        def job(c: sqlite3.Connection) -> None:
            row = c.execute("SELECT id, special_use FROM mailboxes WHERE account_id=? AND "
                            "name=?", (account_id, old)).fetchone()
            if row is None:
                raise MailboxError("No such mailbox", "NONEXISTENT")
            if c.execute("SELECT 1 FROM mailboxes WHERE account_id=? AND name=?",
                         (account_id, new)).fetchone():
                raise MailboxError("Target mailbox already exists", "ALREADYEXISTS")
            if new.startswith(old + HIERARCHY):
                raise MailboxError("Cannot move a mailbox into itself", "CANNOT")
            levels = new.split(HIERARCHY)
            for i in range(1, len(levels)):
                c.execute("INSERT OR IGNORE INTO mailboxes (account_id, name, uidvalidity) "
                          "VALUES (?,?,?)", (account_id, HIERARCHY.join(levels[:i]),
                                             _new_uidvalidity(c)))
            if old == "INBOX":
                # RFC 9051 §6.3.6: renaming INBOX moves its messages to a new
                # mailbox and leaves INBOX empty; inferiors of INBOX stay.
                c.execute("INSERT INTO mailboxes (account_id, name, uidvalidity) "
                          "VALUES (?,?,?)", (account_id, new, _new_uidvalidity(c)))
                target = c.execute("SELECT id FROM mailboxes WHERE account_id=? AND name=?",
                                   (account_id, new)).fetchone()[0]
                uids = [r[0] for r in c.execute("SELECT uid FROM messages WHERE "
                                                "mailbox_id=? ORDER BY uid", (row[0],))]
                _copy_rows(c, row[0], uids, target)
                _expunge_rows(c, row[0], uids)
                return
            c.execute("UPDATE mailboxes SET name=? WHERE id=?", (new, row[0]))
            for child_id, child in c.execute(
                    "SELECT id, name FROM mailboxes WHERE account_id=? AND name LIKE ? "
                    "ESCAPE '\\'", (account_id, _like_prefix(old))).fetchall():
                c.execute("UPDATE mailboxes SET name=? WHERE id=?",
                          (new + child[len(old):], child_id))
        await self._writer.submit_async(job)

    def subscriptions(self, account_id: int) -> list[str]:
        rows = self.conn.execute("SELECT name FROM subscriptions WHERE account_id=? "
                                 "ORDER BY name", (account_id,))
        return [r[0] for r in rows]

    async def subscribe(self, account_id: int, name: str, subscribed: bool) -> None:
        # RFC 9051 §6.3.7: a server MAY check that the mailbox exists; we do not,
        # so a client can subscribe before creating and the name outlives DELETE.
        name = canonical_name(name)
        if subscribed and (why := valid_name(name)):
            raise MailboxError(why, "CANNOT")

        def job(c: sqlite3.Connection) -> None:
            if not subscribed:
                # Removing a name that is not there leaves the list as asked: OK.
                c.execute("DELETE FROM subscriptions WHERE account_id=? AND name=?",
                          (account_id, name))
                return
            if c.execute("SELECT count(*) FROM subscriptions WHERE account_id=?",
                         (account_id,)).fetchone()[0] >= MAX_SUBSCRIPTIONS:
                raise MailboxError("Too many subscriptions", "LIMIT")
            c.execute("INSERT OR IGNORE INTO subscriptions (account_id, name) VALUES (?,?)",
                      (account_id, name))
        await self._writer.submit_async(job)

    async def claim_recent(self, mailbox_id: int, up_to: int) -> int:
        def job(c: sqlite3.Connection) -> int:
            # The read and the move happen in the writer's transaction: no other
            # session (of any process) can claim the same range in between.
            row = c.execute("SELECT recent_uid FROM mailboxes WHERE id=?",
                            (mailbox_id,)).fetchone()
            if row is None:
                return up_to                      # deleted: nothing to claim
            if up_to > row[0]:
                c.execute("UPDATE mailboxes SET recent_uid=? WHERE id=?", (up_to, mailbox_id))
            return row[0]
        return await self._writer.submit_async(job)

    def recent_count(self, mailbox_id: int) -> int:
        return self.conn.execute(
            "SELECT count(*) FROM messages m JOIN mailboxes b ON b.id=m.mailbox_id "
            "WHERE m.mailbox_id=? AND m.uid >= b.recent_uid", (mailbox_id,)).fetchone()[0]

    # --- messages -----------------------------------------------------------------
    def message_states(self, mailbox_id: int, since_modseq: int = 0,
                       from_uid: int = 0) -> list[MessageState]:
        rows = self.conn.execute("SELECT uid, flags, modseq FROM messages WHERE "
                                 "mailbox_id=? AND uid>=? AND modseq>? ORDER BY uid",
                                 (mailbox_id, from_uid, since_modseq))
        return [MessageState(*r) for r in rows]

    def expunged_since(self, mailbox_id: int, modseq: int) -> list[int]:
        return [r[0] for r in self.conn.execute(
            "SELECT uid FROM expunged WHERE mailbox_id=? AND modseq>? ORDER BY uid",
            (mailbox_id, modseq))]

    def message_data(self, mailbox_id: int, uids: list[int], meta: bool) -> list[MessageData]:
        if not uids:
            return []
        cols = ("x.envelope, x.body, x.bodystructure, x.structure, x.header" if meta
                else "NULL, NULL, NULL, NULL, NULL")
        join = "LEFT JOIN message_meta x ON x.id=m.meta_id" if meta else ""
        out = []
        for lo, hi in _ranges(uids):
            out += [MessageData(*r) for r in self.conn.execute(
                f"SELECT m.uid, m.flags, m.modseq, m.size, m.internaldate, m.blob, {cols} "
                f"FROM messages m {join} WHERE m.mailbox_id=? AND m.uid BETWEEN ? AND ? "
                f"ORDER BY m.uid", (mailbox_id, lo, hi))]
        wanted = set(uids)
        return [d for d in out if d.uid in wanted]

    async def store_flags(self, mailbox_id: int, uids: list[int], mode: str, flags: list[str],
                          unchangedsince: int | None = None
                          ) -> tuple[list[MessageState], list[int]]:
        given = list(dict.fromkeys(normalize_flag(f) for f in flags))

        def job(c: sqlite3.Connection) -> tuple[list[MessageState], list[int]]:
            box = c.execute("SELECT highestmodseq FROM mailboxes WHERE id=?",
                            (mailbox_id,)).fetchone()
            if box is None:
                raise MailboxError("Mailbox was deleted", "NONEXISTENT")
            modseq = box[0] + 1
            changed, failed = [], []
            for lo, hi in _ranges(uids):
                for uid, old, mod in c.execute(
                        "SELECT uid, flags, modseq FROM messages WHERE mailbox_id=? "
                        "AND uid BETWEEN ? AND ?", (mailbox_id, lo, hi)).fetchall():
                    if unchangedsince is not None and mod > unchangedsince:
                        failed.append(uid)
                        continue
                    new = _apply(old, mode, given)
                    if new != old:
                        changed.append(MessageState(uid, new, modseq))
            if changed:
                c.executemany("UPDATE messages SET flags=?, modseq=? WHERE mailbox_id=? "
                              "AND uid=?", [(s.flags, modseq, mailbox_id, s.uid)
                                            for s in changed])
                c.execute("UPDATE mailboxes SET highestmodseq=? WHERE id=?",
                          (modseq, mailbox_id))
            return changed, sorted(failed)
        return await self._writer.submit_async(job)

    async def expunge(self, mailbox_id: int, uids: list[int]) -> list[int]:
        def job(c: sqlite3.Connection) -> tuple[list[int], list[str]]:
            return _expunge_rows(c, mailbox_id, uids, self._release)
        gone, files = await self._writer.submit_async(job)
        await self._unlink(files)
        return gone

    async def append(self, mailbox_id: int, content: bytes, flags: list[str],
                     internaldate: float) -> tuple[int, int]:
        flag_text = " ".join(dict.fromkeys(normalize_flag(f) for f in flags))
        parsed = self._index(content)

        def job(c: sqlite3.Connection, digests: list[str]) -> tuple[int, int]:
            box = c.execute("SELECT account_id, uidvalidity FROM mailboxes WHERE id=?",
                            (mailbox_id,)).fetchone()
            if box is None:
                raise MailboxError("Mailbox was deleted", "TRYCREATE")
            _check_quota(c, box[0], len(content))
            meta_id = ensure_meta(c, digests[0], parsed)
            [uid] = add_messages(c, mailbox_id, [NewMessage(
                digests[0], len(content), internaldate, flag_text,
                f"append-{digests[0][:16]}", meta_id)])
            return box[1], uid
        return await self._writer.submit_async(job, (content,))

    async def copy(self, source_id: int, uids: list[int], target_id: int, move: bool
                   ) -> tuple[int, list[tuple[int, int]]]:
        def job(c: sqlite3.Connection) -> tuple[tuple[int, list], list[str]]:
            box = c.execute("SELECT account_id, uidvalidity FROM mailboxes WHERE id=?",
                            (target_id,)).fetchone()
            if box is None:
                raise MailboxError("Target mailbox was deleted", "TRYCREATE")
            size = _size_of(c, source_id, uids)
            if source_id != target_id or not move:
                _check_quota(c, box[0], size)
            pairs = _copy_rows(c, source_id, uids, target_id)
            files: list[str] = []
            if move:
                _, files = _expunge_rows(c, source_id, [s for s, _ in pairs], self._release)
            return (box[1], pairs), files
        result, files = await self._writer.submit_async(job)
        await self._unlink(files)
        return result

    async def backfill_meta(self, batch: int = 200) -> int:
        """Parse messages stored before IMAP metadata existed (an upgraded data_dir),
        then parse again those whose metadata an older version made; a batch per
        writer job so deliveries are never held up for long. How many were parsed."""
        return await self._parse_unparsed(batch) + await self._reparse_stale(batch)

    async def _parse_unparsed(self, batch: int) -> int:
        done = 0
        while True:
            digests = [r[0] for r in self.conn.execute(
                "SELECT DISTINCT blob FROM messages WHERE meta_id IS NULL LIMIT ?",
                (batch,))]
            if not digests:
                return done
            indexed = await asyncio.to_thread(self._index_blobs, digests)
            await self._writer.submit_async(_meta_job(list(zip(digests, indexed, strict=True))))
            done += len(digests)

    async def _reparse_stale(self, batch: int) -> int:
        done = last = 0
        while True:
            # In id order, from where the last batch ended: one pass over the table.
            rows = self.conn.execute(
                "SELECT id, blob FROM message_meta WHERE id>? AND version<? ORDER BY id "
                "LIMIT ?", (last, META_VERSION, batch)).fetchall()
            if not rows:
                return done
            indexed = await asyncio.to_thread(self._index_blobs, [r[1] for r in rows])
            await self._writer.submit_async(_reparse_job(
                [(r[0], m) for r, m in zip(rows, indexed, strict=True)]))
            done += len(rows)
            last = rows[-1][0]

    def _index_blobs(self, digests: list[str]) -> list[Indexed]:
        return [self._index(self.read_blob(d)) for d in digests]

    # --- search and sort ------------------------------------------------------------
    def search(self, mailbox_id: int, key: query.Query) -> list[int]:
        terms = list(key.keys) if isinstance(key, query.And) else [key]
        driver = next((t for t in terms if _indexed(t)), None)
        if driver is not None:
            # A full-text term among the top-level keys: start from the index's
            # matches (CROSS JOIN fixes the order), reach the messages by blob ("+"
            # keeps SQLite from scanning the mailbox instead), then check the rest.
            args: list = []
            found = _text_match(driver, args)
            args.append(mailbox_id)
            where = _sql(query.And(tuple(t for t in terms if t is not driver)), args)
            return [r[0] for r in self.conn.execute(
                f"SELECT m.uid FROM message_text t CROSS JOIN message_meta x "
                f"CROSS JOIN messages m WHERE {found} AND x.id=t.rowid "
                f"AND m.blob=x.blob AND +m.mailbox_id=? AND ({where}) ORDER BY m.uid", args)]
        args = [mailbox_id]
        where = _sql(key, args)
        # Flag, UID, size and date searches (most of what clients send) need no metadata.
        join = "LEFT JOIN message_meta x ON x.id=m.meta_id" if "x." in where else ""
        return [r[0] for r in self.conn.execute(
            f"SELECT m.uid FROM messages m {join} WHERE m.mailbox_id=? AND ({where}) "
            f"ORDER BY m.uid", args)]

    def sort_keys(self, mailbox_id: int, uids: list[int]) -> list[tuple]:
        """(uid, internaldate, size, sent, base_subject, sort_from, sort_to, sort_cc,
        msgid, in_reply_to, refs, subject, display_from, display_to) for SORT and
        THREAD (the row imap/threads.py reads)."""
        out = []
        wanted = set(uids)
        for lo, hi in _ranges(uids):
            out += [r for r in self.conn.execute(
                "SELECT m.uid, m.internaldate, m.size, x.sent, x.base_subject, x.sort_from, "
                "x.sort_to, x.sort_cc, x.msgid, x.in_reply_to, x.refs, x.subject, "
                "x.display_from, x.display_to FROM messages m "
                "LEFT JOIN message_meta x ON x.id=m.meta_id WHERE m.mailbox_id=? "
                "AND m.uid BETWEEN ? AND ? ORDER BY m.uid", (mailbox_id, lo, hi))
                if r[0] in wanted]
        return out

    # --- quota (RFC 9208) ------------------------------------------------------------
    def quota(self, account_id: int) -> Quota:
        limit = self.conn.execute("SELECT quota_bytes FROM accounts WHERE id=?",
                                  (account_id,)).fetchone()
        used, count = _usage(self.conn, account_id)
        return Quota(used, limit[0] if limit else 0, count)

    def set_quota(self, account: str, limit: int) -> None:
        key = parse_mailbox(account).key

        def job(c: sqlite3.Connection) -> None:
            if c.execute("UPDATE accounts SET quota_bytes=? WHERE lookup=?",
                         (limit, key)).rowcount == 0:
                raise StoreError(f"no such account: {account}")
        self._write(job)

    def quota_limit(self, account_id: int) -> int:
        row = self.conn.execute("SELECT quota_bytes FROM accounts WHERE id=?",
                                (account_id,)).fetchone()
        return (row[0] or 0) if row else 0


def _adopt_legacy_subscriptions(conn: sqlite3.Connection) -> None:
    """Databases from before the subscriptions table kept a `subscribed` flag on
    each mailbox: copy the subscribed names once (marked in meta, since the old
    column stays and fills with its default for mailboxes created later)."""
    if conn.execute("SELECT 1 FROM meta WHERE key='subscriptions_adopted'").fetchone():
        return
    columns = {row[1] for row in conn.execute("PRAGMA table_info(mailboxes)")}
    conn.execute("BEGIN IMMEDIATE")          # one step, even with several processes
    try:
        if "subscribed" in columns and not conn.execute(
                "SELECT 1 FROM meta WHERE key='subscriptions_adopted'").fetchone():
            conn.execute("INSERT OR IGNORE INTO subscriptions (account_id, name) "
                         "SELECT account_id, name FROM mailboxes WHERE subscribed")
        conn.execute("INSERT OR IGNORE INTO meta (key, value) "
                     "VALUES ('subscriptions_adopted', '1')")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _fts5_arguments(sql: str) -> str:
    """The arguments of a CREATE VIRTUAL TABLE ... USING fts5(...), spaces normalized."""
    found = re.search(r"USING\s+fts5\s*\((.*)\)", sql, re.S)
    return " ".join(found[1].split()) if found else ""


def _adopt_text_index(conn: sqlite3.Connection) -> None:
    """A database whose text index was declared otherwise than schema.sql declares it
    now (from before substring SEARCH: a word index, FTS5 unicode61) gets the table
    anew, and every parse is marked as older so that the start-up backfill fills the
    new index (see META_VERSION)."""
    schema = resources.files("mailwright.store").joinpath("schema.sql").read_text()
    create = re.search(r"CREATE VIRTUAL TABLE IF NOT EXISTS message_text\b.*?;", schema, re.S)
    assert create is not None, "schema.sql declares message_text"

    def current() -> bool:
        row = conn.execute("SELECT sql FROM sqlite_master WHERE type='table' "
                           "AND name='message_text'").fetchone()
        return row is not None and _fts5_arguments(row[0]) == _fts5_arguments(create[0])
    if current():
        return
    conn.execute("BEGIN IMMEDIATE")          # one step, even with several processes
    try:
        if not current():
            conn.execute("DROP TABLE IF EXISTS message_text")
            conn.execute(create[0])
            conn.execute("UPDATE message_meta SET version=0")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _new_uidvalidity(c: sqlite3.Connection) -> int:
    """RFC 9051 §2.3.1.1: a mailbox name re-created later must get a greater
    UIDVALIDITY. Greater than every value in use and every value ever retired (a
    deleted mailbox's row is gone, so its value is kept in meta), even when the
    name is re-created within the same second."""
    top = c.execute("SELECT max(uidvalidity) FROM mailboxes").fetchone()[0] or 0
    value = max(int(time.time()), top + 1, _retired_uidvalidity(c) + 1)
    _retire_uidvalidity(c, value)
    return value


def _retired_uidvalidity(c: sqlite3.Connection) -> int:
    row = c.execute("SELECT value FROM meta WHERE key='uidvalidity_high'").fetchone()
    return int(row[0]) if row else 0


def _retire_uidvalidity(c: sqlite3.Connection, value: int) -> None:
    """Remember the highest UIDVALIDITY given out (or held by a deleted mailbox)."""
    if value > _retired_uidvalidity(c):
        c.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('uidvalidity_high', ?)",
                  (str(value),))


def _like_prefix(name: str) -> str:
    return re.sub(r"([\\%_])", r"\\\1", name + HIERARCHY) + "%"


def _ranges(uids: list[int]) -> list[tuple[int, int]]:
    """Sorted UIDs as few (low, high) runs, for range queries."""
    out: list[list[int]] = []
    for uid in sorted(set(uids)):
        if out and uid == out[-1][1] + 1:
            out[-1][1] = uid
        else:
            out.append([uid, uid])
    return [(a, b) for a, b in out]


def _apply(old: str, mode: str, given: list[str]) -> str:
    current = old.split()
    if mode == "set":
        return " ".join(given)
    lower = {f.lower() for f in given}
    if mode == "add":
        have = {f.lower() for f in current}
        return " ".join(current + [f for f in given if f.lower() not in have])
    return " ".join(f for f in current if f.lower() not in lower)


def _usage(c: sqlite3.Connection, account_id: int) -> tuple[int, int]:
    row = c.execute("SELECT coalesce(sum(m.size), 0), count(*) FROM messages m "
                    "JOIN mailboxes b ON m.mailbox_id=b.id WHERE b.account_id=?",
                    (account_id,)).fetchone()
    return row[0], row[1]


def _check_quota(c: sqlite3.Connection, account_id: int, size: int) -> None:
    """The account's limit holds in the transaction that writes (RFC 9208 §5.1)."""
    row = c.execute("SELECT quota_bytes FROM accounts WHERE id=?", (account_id,)).fetchone()
    if not row or not row[0]:
        return
    used, count = _usage(c, account_id)
    if Quota(used, row[0], count).exceeded_by(size):
        raise OverQuota()


def _size_of(c: sqlite3.Connection, mailbox_id: int, uids: list[int]) -> int:
    total = 0
    for lo, hi in _ranges(uids):
        total += c.execute("SELECT coalesce(sum(size), 0) FROM messages WHERE mailbox_id=? "
                           "AND uid BETWEEN ? AND ?", (mailbox_id, lo, hi)).fetchone()[0]
    return total


@dataclass(frozen=True)
class NewMessage:
    """A message row to add: the blob it references and what IMAP keeps with it."""
    blob: str
    size: int
    internaldate: float
    flags: str
    message_id: str
    meta_id: int | None


def add_messages(c: sqlite3.Connection, mailbox_id: int, messages: list[NewMessage]
                 ) -> list[int]:
    """Add messages to a mailbox: the next UIDs (RFC 9051 §2.3.1.1), one new MODSEQ
    for all of them (RFC 7162 §3.1.1), UIDNEXT and HIGHESTMODSEQ moved on. The one
    way a message enters a mailbox (delivery, APPEND, COPY/MOVE); their UIDs."""
    if not messages:
        return []
    box = c.execute("SELECT uidnext, highestmodseq FROM mailboxes WHERE id=?",
                    (mailbox_id,)).fetchone()
    first, modseq = box[0], box[1] + 1
    uids = list(range(first, first + len(messages)))
    c.executemany("INSERT INTO messages (mailbox_id, uid, blob, size, internaldate, flags, "
                  "modseq, message_id, meta_id) VALUES (?,?,?,?,?,?,?,?,?)",
                  [(mailbox_id, uid, m.blob, m.size, m.internaldate, m.flags, modseq,
                    m.message_id, m.meta_id) for uid, m in zip(uids, messages, strict=True)])
    c.execute("UPDATE mailboxes SET uidnext=?, highestmodseq=? WHERE id=?",
              (first + len(messages), modseq, mailbox_id))
    return uids


def _copy_rows(c: sqlite3.Connection, source_id: int, uids: list[int], target_id: int
               ) -> list[tuple[int, int]]:
    """Copy messages (same blob, flags kept, RFC 9051 §6.4.7) to new UIDs in the target."""
    rows = []
    for lo, hi in _ranges(uids):
        rows += c.execute("SELECT uid, blob, size, internaldate, flags, message_id, meta_id "
                          "FROM messages "
                          "WHERE mailbox_id=? AND uid BETWEEN ? AND ? ORDER BY uid",
                          (source_id, lo, hi)).fetchall()
    wanted = set(uids)
    rows = [r for r in rows if r[0] in wanted]
    new = add_messages(c, target_id, [NewMessage(*r[1:]) for r in rows])
    return [(r[0], uid) for r, uid in zip(rows, new, strict=True)]


def _expunge_rows(c: sqlite3.Connection, mailbox_id: int, uids: list[int],
                  release=None) -> tuple[list[int], list[str]]:
    """Remove messages, leave tombstones with the new MODSEQ (RFC 7162 §3.2.10), and
    release blobs nothing references any more (files returned for unlinking)."""
    if not uids:
        return [], []
    gone, blobs = [], []
    for lo, hi in _ranges(uids):
        for uid, blob in c.execute("SELECT uid, blob FROM messages WHERE mailbox_id=? AND "
                                   "uid BETWEEN ? AND ?", (mailbox_id, lo, hi)).fetchall():
            gone.append(uid)
            blobs.append(blob)
    wanted = set(uids)
    gone = [u for u in gone if u in wanted]
    if not gone:
        return [], []
    modseq = c.execute("SELECT highestmodseq FROM mailboxes WHERE id=?",
                       (mailbox_id,)).fetchone()[0] + 1
    c.executemany("DELETE FROM messages WHERE mailbox_id=? AND uid=?",
                  [(mailbox_id, u) for u in gone])
    c.executemany("INSERT INTO expunged (mailbox_id, uid, modseq) VALUES (?,?,?)",
                  [(mailbox_id, u, modseq) for u in gone])
    c.execute("UPDATE mailboxes SET highestmodseq=? WHERE id=?", (modseq, mailbox_id))
    files = release(c, blobs) if release else []
    return gone, files


# --- SEARCH keys to SQL ------------------------------------------------------------------
_HEADER_COLUMNS = {"from": "x.from_", "to": "x.to_", "cc": "x.cc", "bcc": "x.bcc",
                   "subject": "x.subject"}


def _like(text: str) -> str:
    return "%" + re.sub(r"([\\%_])", r"\\\1", text) + "%"


# The text index is FTS5's trigram tokenizer over folded text (`fold`), without
# positions (detail=none: the index is about the size of the text, and writing it
# at delivery costs a fraction of what positions do). A string of three or more
# characters selects the rows holding all of its trigrams; instr() then keeps those
# that hold the string itself: SEARCH matches substrings (RFC 9051 §6.4.4). A
# shorter string has no trigram to look up: the rows are scanned.
TRIGRAM = 3


def _indexed(key) -> bool:
    """Can the index narrow down this key?"""
    return isinstance(key, query.Text | query.Body) and len(fold(key.text)) >= TRIGRAM


def _trigrams(needle: str) -> str:
    """An FTS5 query for the rows holding every trigram of the needle."""
    grams = dict.fromkeys(needle[i:i + TRIGRAM] for i in range(len(needle) - TRIGRAM + 1))
    return " AND ".join('"' + g.replace('"', '""') + '"' for g in grams)


def _text_match(key: query.Text | query.Body, args: list) -> str:
    """The condition on message_text `t` for a TEXT key (the header fields or the
    body hold the string) or a BODY key (the body does)."""
    needle = fold(key.text)
    found = "instr(t.body, ?) > 0"
    args_found = [needle]
    if isinstance(key, query.Text):
        found = f"(instr(t.hdr, ?) > 0 OR {found})"
        args_found.insert(0, needle)
    if len(needle) < TRIGRAM:
        args += args_found
        return found
    args += [_trigrams(needle), *args_found]
    return f"t.message_text MATCH ? AND {found}"


def _text_sql(key: query.Text | query.Body, args: list) -> str:
    if not key.text:
        return "1"                              # the empty string is in every text
    return f"x.id IN (SELECT t.rowid FROM message_text t WHERE {_text_match(key, args)})"


def _day_start(day: datetime.date) -> float:
    """The first second of a day in the server's zone (the zone INTERNALDATE is
    shown in, render.date_time)."""
    return datetime.datetime(day.year, day.month, day.day).timestamp()


def _internaldate_sql(op: str, day: datetime.date, args: list) -> str:
    """BEFORE / ON / SINCE: the internal date's day, disregarding time (RFC 9051
    §6.4.4). The next day starts at its own midnight, not always 24 hours later."""
    start = _day_start(day)
    if op == "before":
        args.append(start)
        return "m.internaldate < ?"
    if op == "since":
        args.append(start)
        return "m.internaldate >= ?"
    args += [start, _day_start(day + datetime.timedelta(days=1))]
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
    column = _HEADER_COLUMNS.get(field)
    if column and text:
        args.append(_like(text))
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
