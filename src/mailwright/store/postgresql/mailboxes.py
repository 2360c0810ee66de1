"""Mailboxes for PostgreSQL: create, delete, rename (RFC 9051 §6.3), subscriptions,
\\Recent claims, counts for STATUS, UIDVALIDITY that is never reused.

Every change to a mailbox's messages locks its row first (mailbox_messages.py): the
row is the mailbox's clock (UIDNEXT, HIGHESTMODSEQ), the same on every node."""

from __future__ import annotations

import time

from psycopg import errors

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
from .db import Cursor, Database
from .mailbox_messages import copy_rows, expunge_rows, lock_mailbox

_COUNTS_CACHED = 10_000             # mailboxes whose counts are kept


class PostgresMailboxes:
    db: Database

    async def mailboxes(self, account_id: int) -> list[Mailbox]:
        rows = await self.db.fetchall(f"SELECT {MAILBOX_COLUMNS} FROM mailboxes "
                                      "WHERE account_id=%s ORDER BY name COLLATE \"C\"",
                                      (account_id,))
        return [Mailbox(*r) for r in rows]

    async def mailbox(self, account_id: int, name: str) -> Mailbox | None:
        r = await self.db.fetchone(f"SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE "
                                   "account_id=%s AND name=%s",
                                   (account_id, canonical_name(name)))
        return Mailbox(*r) if r else None

    async def mailbox_by_id(self, mailbox_id: int) -> Mailbox | None:
        r = await self.db.fetchone(f"SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE id=%s",
                                   (mailbox_id,))
        return Mailbox(*r) if r else None

    async def mailbox_counts(self, mailbox_id: int) -> MailboxCounts:
        # Every change to a mailbox moves its UIDNEXT or HIGHESTMODSEQ (in the
        # database, whichever node made it), so counts computed at one version hold
        # until either moves: STATUS of a large, quiet mailbox costs one indexed
        # lookup, not a scan.
        cache: dict = self.__dict__.setdefault("_counts_cache", {})
        hit = cache.get(mailbox_id)
        if hit is not None and \
                (await self.mailbox_versions([mailbox_id])).get(mailbox_id) == hit[0]:
            return hit[1]
        # The version and the counts from one statement: one snapshot.
        row = await self.db.fetchone(
            "SELECT b.uidnext, b.highestmodseq, count(m.uid), "
            "count(m.uid) FILTER (WHERE strpos(' ' || m.flags || ' ', ' \\Seen ') = 0), "
            "count(m.uid) FILTER (WHERE strpos(' ' || m.flags || ' ', ' \\Deleted ') > 0), "
            "coalesce(sum(m.size), 0) FROM mailboxes b "
            "LEFT JOIN messages m ON m.mailbox_id=b.id WHERE b.id=%s "
            "GROUP BY b.uidnext, b.highestmodseq", (mailbox_id,))
        if row is None:
            return MailboxCounts(0, 0, 0, 0)
        counts = MailboxCounts(*(int(v) for v in row[2:]))
        if len(cache) > _COUNTS_CACHED:
            cache.clear()
        cache[mailbox_id] = ((row[0], row[1]), counts)
        return counts

    async def mailbox_versions(self, mailbox_ids: list[int]) -> dict[int, tuple[int, int]]:
        if not mailbox_ids:
            return {}
        rows = await self.db.fetchall("SELECT id, uidnext, highestmodseq FROM mailboxes "
                                      "WHERE id = ANY(%s::bigint[])", (list(mailbox_ids),))
        return {r[0]: (r[1], r[2]) for r in rows}

    async def create_mailbox(self, account_id: int, name: str,
                             special_use: str | None = None) -> Mailbox:
        name = canonical_name(name)
        if why := valid_name(name):
            raise MailboxError(why, "CANNOT")

        async def job(cur: Cursor) -> tuple:
            await cur.execute(
                "SELECT count(*), count(*) FILTER (WHERE name=%s), "
                "count(*) FILTER (WHERE special_use=%s) FROM mailboxes WHERE account_id=%s",
                (name, special_use, account_id))
            total, same, special = await cur.fetchone()
            if same:
                raise MailboxError("Mailbox already exists", "ALREADYEXISTS")
            if total >= MAX_MAILBOXES:
                raise MailboxError("Too many mailboxes", "LIMIT")
            if special_use and special:
                raise MailboxError(f"A {special_use} mailbox exists already", "USEATTR")
            # RFC 9051 §6.3.4: superior hierarchy names are created as needed.
            levels = name.split(HIERARCHY)
            superiors = [HIERARCHY.join(levels[:i]) for i in range(1, len(levels))]
            if superiors:
                await cur.execute(
                    "INSERT INTO mailboxes (account_id, name, uidvalidity) SELECT %s, s.name, "
                    "s.v FROM unnest(%s::text[], %s::bigint[]) s(name, v) "
                    "ON CONFLICT (account_id, name) DO NOTHING",
                    (account_id, superiors, await new_uidvalidity(cur, len(superiors))))
            try:
                await cur.execute(
                    f"INSERT INTO mailboxes (account_id, name, special_use, uidvalidity) "
                    f"VALUES (%s,%s,%s,%s) RETURNING {MAILBOX_COLUMNS}",
                    (account_id, name, special_use, (await new_uidvalidity(cur))[0]))
            except errors.UniqueViolation:
                # Another session created it since the check above.
                raise MailboxError("Mailbox already exists", "ALREADYEXISTS") from None
            return await cur.fetchone()
        return Mailbox(*await self.db.transaction(job))

    async def delete_mailbox(self, account_id: int, name: str) -> None:
        name = canonical_name(name)
        if name == "INBOX":
            raise MailboxError("INBOX cannot be deleted", "CANNOT")

        async def job(cur: Cursor) -> None:
            await cur.execute("SELECT id, uidvalidity FROM mailboxes WHERE account_id=%s "
                              "AND name=%s FOR UPDATE", (account_id, name))
            row = await cur.fetchone()
            if row is None:
                raise MailboxError("No such mailbox", "NONEXISTENT")
            # RFC 9051 §6.3.5: a mailbox with inferiors keeps its name as a
            # placeholder; we refuse instead of leaving a \Noselect level behind.
            await cur.execute("SELECT 1 FROM mailboxes WHERE account_id=%s AND "
                              "starts_with(name, %s) LIMIT 1", (account_id, name + HIERARCHY))
            if await cur.fetchone():
                raise MailboxError("Mailbox has child mailboxes; delete them first",
                                   "INUSE")
            await retire_uidvalidity(cur, row[1])
            # Its messages and tombstones go with it (ON DELETE CASCADE).
            await cur.execute("WITH gone AS (DELETE FROM messages WHERE mailbox_id=%s "
                              "RETURNING blob) SELECT DISTINCT blob FROM gone", row[:1])
            blobs = [r[0] for r in await cur.fetchall()]
            await cur.execute("DELETE FROM mailboxes WHERE id=%s", row[:1])
            await release_blobs(cur, blobs)
        await self.db.transaction(job)

    async def rename_mailbox(self, account_id: int, old: str, new: str) -> None:
        old, new = canonical_name(old), canonical_name(new)
        if why := valid_name(new):
            raise MailboxError(why, "CANNOT")

        async def job(cur: Cursor) -> None:
            await cur.execute("SELECT id FROM mailboxes WHERE account_id=%s AND name=%s "
                              "FOR UPDATE", (account_id, old))
            row = await cur.fetchone()
            if row is None:
                raise MailboxError("No such mailbox", "NONEXISTENT")
            await cur.execute("SELECT 1 FROM mailboxes WHERE account_id=%s AND name=%s",
                              (account_id, new))
            if await cur.fetchone():
                raise MailboxError("Target mailbox already exists", "ALREADYEXISTS")
            if new.startswith(old + HIERARCHY):
                raise MailboxError("Cannot move a mailbox into itself", "CANNOT")
            levels = new.split(HIERARCHY)
            for i in range(1, len(levels)):
                await cur.execute(
                    "INSERT INTO mailboxes (account_id, name, uidvalidity) VALUES (%s,%s,%s) "
                    "ON CONFLICT (account_id, name) DO NOTHING",
                    (account_id, HIERARCHY.join(levels[:i]),
                     (await new_uidvalidity(cur))[0]))
            try:
                if old == "INBOX":
                    await _rename_inbox(cur, account_id, row[0], new)
                    return
                # The mailbox and its inferiors in one statement.
                await cur.execute(
                    "UPDATE mailboxes SET name = %s || substr(name, %s) WHERE account_id=%s "
                    "AND (id=%s OR starts_with(name, %s))",
                    (new, len(old) + 1, account_id, row[0], old + HIERARCHY))
            except errors.UniqueViolation:
                raise MailboxError("Target mailbox already exists", "ALREADYEXISTS") from None
        await self.db.transaction(job)

    async def subscriptions(self, account_id: int) -> list[str]:
        rows = await self.db.fetchall("SELECT name FROM subscriptions WHERE account_id=%s "
                                      "ORDER BY name COLLATE \"C\"", (account_id,))
        return [r[0] for r in rows]

    async def subscribe(self, account_id: int, name: str, subscribed: bool) -> None:
        # RFC 9051 §6.3.7: a server MAY check that the mailbox exists; we do not,
        # so a client can subscribe before creating and the name outlives DELETE.
        name = canonical_name(name)
        if not subscribed:
            # Removing a name that is not there leaves the list as asked: OK.
            await self.db.execute("DELETE FROM subscriptions WHERE account_id=%s AND name=%s",
                                  (account_id, name))
            return
        if why := valid_name(name):
            raise MailboxError(why, "CANNOT")
        # One statement: the limit is checked against what is committed when it runs.
        row = await self.db.fetchone(
            "WITH n AS (SELECT count(*) AS n FROM subscriptions WHERE account_id=%s), "
            "ins AS (INSERT INTO subscriptions (account_id, name) SELECT %s, %s FROM n "
            "WHERE n.n < %s ON CONFLICT DO NOTHING) SELECT n FROM n",
            (account_id, account_id, name, MAX_SUBSCRIPTIONS))
        if row[0] >= MAX_SUBSCRIPTIONS:
            raise MailboxError("Too many subscriptions", "LIMIT")

    async def claim_recent(self, mailbox_id: int, up_to: int) -> int:
        # The row lock orders the claims of every session on every node: no two
        # claim the same range.
        row = await self.db.fetchone(
            "WITH old AS (SELECT recent_uid FROM mailboxes WHERE id=%s FOR NO KEY UPDATE) "
            "UPDATE mailboxes b SET recent_uid = greatest(old.recent_uid, %s) FROM old "
            "WHERE b.id=%s RETURNING old.recent_uid", (mailbox_id, up_to, mailbox_id))
        return row[0] if row else up_to              # deleted: nothing to claim

    async def recent_count(self, mailbox_id: int) -> int:
        row = await self.db.fetchone(
            "SELECT count(*) FROM messages m JOIN mailboxes b ON b.id=m.mailbox_id "
            "WHERE m.mailbox_id=%s AND m.uid >= b.recent_uid", (mailbox_id,))
        return row[0]


async def _rename_inbox(cur: Cursor, account_id: int, inbox_id: int, new: str) -> None:
    """RFC 9051 §6.3.6: renaming INBOX moves its messages to a new mailbox and leaves
    INBOX empty; inferiors of INBOX stay."""
    await cur.execute("INSERT INTO mailboxes (account_id, name, uidvalidity) "
                      "VALUES (%s,%s,%s) RETURNING id",
                      (account_id, new, (await new_uidvalidity(cur))[0]))
    target = (await cur.fetchone())[0]
    await lock_mailbox(cur, inbox_id)
    await cur.execute("SELECT uid FROM messages WHERE mailbox_id=%s ORDER BY uid",
                      (inbox_id,))
    uids = [r[0] for r in await cur.fetchall()]
    await copy_rows(cur, inbox_id, uids, target)
    await expunge_rows(cur, inbox_id, uids)


async def new_uidvalidity(cur: Cursor, count: int = 1) -> list[int]:
    """RFC 9051 §2.3.1.1: a mailbox name re-created later must get a greater
    UIDVALIDITY. `count` values greater than every value in use and every value ever
    given out or retired (a deleted mailbox's row is gone, so the highest is kept in
    `counters`), even within the same second; the counter row's lock orders
    concurrent creations on every node."""
    await cur.execute(
        "INSERT INTO counters AS t (name, value) VALUES ('uidvalidity_high', "
        "greatest(%(now)s, coalesce((SELECT max(uidvalidity) FROM mailboxes), 0) + 1) "
        "+ %(n)s - 1) ON CONFLICT (name) DO UPDATE "
        "SET value = greatest(t.value + %(n)s, EXCLUDED.value) RETURNING value",
        {"now": int(time.time()), "n": count})
    high = (await cur.fetchone())[0]
    return list(range(high - count + 1, high + 1))


async def retire_uidvalidity(cur: Cursor, value: int) -> None:
    """Remember a deleted mailbox's UIDVALIDITY as given out."""
    await cur.execute("INSERT INTO counters AS t (name, value) VALUES ('uidvalidity_high', "
                      "%s) ON CONFLICT (name) DO UPDATE SET value = greatest(t.value, "
                      "EXCLUDED.value)", (value,))
