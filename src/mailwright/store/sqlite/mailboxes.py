"""Mailboxes for SQLite: create, delete, rename (RFC 9051 §6.3), subscriptions,
\\Recent claims, counts for STATUS, UIDVALIDITY that is never reused."""

from __future__ import annotations

import re
import sqlite3
import time

from ..mailboxes import (
    HIERARCHY,
    MAILBOX_COLUMNS,
    MAX_MAILBOXES,
    MAX_SUBSCRIPTIONS,
    Mailbox,
    MailboxCounts,
    MailboxError,
    canonical_name,
    valid_name,
)
from .blobrefs import release_blobs
from .messages import copy_rows, expunge_rows


class SQLiteMailboxes:
    conn: sqlite3.Connection

    async def mailboxes(self, account_id: int) -> list[Mailbox]:
        rows = self.conn.execute(f"SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE account_id=? "
                                 "ORDER BY name", (account_id,))
        return [Mailbox(*r) for r in rows]

    async def mailbox(self, account_id: int, name: str) -> Mailbox | None:
        r = self.conn.execute(f"SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE account_id=? "
                              "AND name=?", (account_id, canonical_name(name))).fetchone()
        return Mailbox(*r) if r else None

    async def mailbox_by_id(self, mailbox_id: int) -> Mailbox | None:
        r = self.conn.execute(f"SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE id=?",
                              (mailbox_id,)).fetchone()
        return Mailbox(*r) if r else None

    async def mailbox_counts(self, mailbox_id: int) -> MailboxCounts:
        # Every change to a mailbox moves its UIDNEXT or HIGHESTMODSEQ, so counts
        # computed at one (UIDNEXT, HIGHESTMODSEQ) hold until either moves: STATUS
        # of a large, quiet mailbox costs one indexed lookup, not a scan.
        version = self._versions([mailbox_id]).get(mailbox_id)
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

    async def mailbox_versions(self, mailbox_ids: list[int]) -> dict[int, tuple[int, int]]:
        return self._versions(mailbox_ids)

    def _versions(self, mailbox_ids: list[int]) -> dict[int, tuple[int, int]]:
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
        found = await self.mailbox(account_id, name)
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
            return release_blobs(c, blobs)
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
                copy_rows(c, row[0], uids, target)
                expunge_rows(c, row[0], uids)
                return
            c.execute("UPDATE mailboxes SET name=? WHERE id=?", (new, row[0]))
            for child_id, child in c.execute(
                    "SELECT id, name FROM mailboxes WHERE account_id=? AND name LIKE ? "
                    "ESCAPE '\\'", (account_id, _like_prefix(old))).fetchall():
                c.execute("UPDATE mailboxes SET name=? WHERE id=?",
                          (new + child[len(old):], child_id))
        await self._writer.submit_async(job)

    async def subscriptions(self, account_id: int) -> list[str]:
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

    async def recent_count(self, mailbox_id: int) -> int:
        return self.conn.execute(
            "SELECT count(*) FROM messages m JOIN mailboxes b ON b.id=m.mailbox_id "
            "WHERE m.mailbox_id=? AND m.uid >= b.recent_uid", (mailbox_id,)).fetchone()[0]


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
