"""Messages in mailboxes for PostgreSQL: the one way a message enters a mailbox
(add_messages: delivery, APPEND, COPY/MOVE), copies, expunges with tombstones, flags
and MODSEQ (RFC 7162), and what FETCH reads.

A mailbox's row is its clock: every write to its messages locks the row first
(lock_mailbox, or the UPDATE that moves UIDNEXT), so writers on any node take UIDs
and MODSEQs one after another, and a MODSEQ is never seen before the changes below
it are committed. Writers that lock two mailboxes (COPY, MOVE) lock them in id order.
"""

from __future__ import annotations

from collections.abc import Callable

from ..blobs import digest_of
from ..mailboxes import (
    MailboxError,
    MessageData,
    MessageState,
    NewMessage,
    flag_changes,
    normalize_flag,
)
from .blobrefs import release_blobs
from .db import Cursor, Database
from .messages import store_blob
from .meta import Indexed, ensure_meta
from .quota import check_quota

_NEW_COLUMNS = "blob, size, internaldate, flags, message_id, meta_id"


async def lock_mailbox(cur: Cursor, *mailbox_ids: int) -> dict[int, tuple[int, int, int]]:
    """Lock mailbox rows until the transaction ends, in id order (no deadlock between
    two writers locking the same two); (account_id, uidvalidity, highestmodseq) of
    each that exists."""
    await cur.execute("SELECT id, account_id, uidvalidity, highestmodseq FROM mailboxes "
                      "WHERE id = ANY(%s::bigint[]) ORDER BY id FOR NO KEY UPDATE",
                      (list(mailbox_ids),))
    return {r[0]: r[1:] for r in await cur.fetchall()}


async def add_messages(cur: Cursor, mailbox_id: int, messages: list[NewMessage]
                       ) -> list[int]:
    """Add messages to a mailbox: the next UIDs (RFC 9051 §2.3.1.1), one new MODSEQ
    for all of them (RFC 7162 §3.1.1), UIDNEXT and HIGHESTMODSEQ moved on, in one
    statement. The one way a message enters a mailbox; their UIDs, in order."""
    if not messages:
        return []
    columns = list(zip(*((m.blob, m.size, m.internaldate, m.flags, m.message_id, m.meta_id)
                         for m in messages), strict=True))
    await cur.execute(
        "WITH box AS (UPDATE mailboxes SET uidnext = uidnext + %(n)s, "
        "highestmodseq = highestmodseq + 1 WHERE id=%(box)s "
        "RETURNING uidnext - %(n)s AS first, highestmodseq) "
        f"INSERT INTO messages (mailbox_id, uid, modseq, {_NEW_COLUMNS}) "
        f"SELECT %(box)s, box.first + r.i - 1, box.highestmodseq, {_NEW_COLUMNS} "
        "FROM box, unnest(%(blob)s::text[], %(size)s::bigint[], %(date)s::float8[], "
        "%(flags)s::text[], %(msgid)s::text[], %(meta)s::bigint[]) WITH ORDINALITY "
        f"r({_NEW_COLUMNS}, i) RETURNING uid",
        {"n": len(messages), "box": mailbox_id, "blob": list(columns[0]),
         "size": list(columns[1]), "date": list(columns[2]), "flags": list(columns[3]),
         "msgid": list(columns[4]), "meta": list(columns[5])})
    uids = sorted(r[0] for r in await cur.fetchall())
    if not uids:
        raise MailboxError("Mailbox was deleted", "TRYCREATE")
    return uids


async def copy_rows(cur: Cursor, source_id: int, uids: list[int], target_id: int
                    ) -> list[tuple[int, int]]:
    """Copy messages (same blob, flags kept, RFC 9051 §6.4.7) to new UIDs in the
    target, in UID order, in one statement; [(source UID, new UID)]."""
    if not uids:
        return []
    wanted = sorted(set(uids))
    # New references to stored blobs: held against a release until the commit
    # (blobrefs.py), whoever else removes a reference meanwhile.
    await cur.execute("SELECT digest FROM blobs WHERE digest IN (SELECT blob FROM messages "
                      "WHERE mailbox_id=%s AND uid = ANY(%s::bigint[])) ORDER BY digest "
                      "FOR KEY SHARE", (source_id, wanted))
    await cur.execute(
        f"WITH src AS (SELECT uid, {_NEW_COLUMNS}, row_number() OVER (ORDER BY uid) AS i "
        "FROM messages WHERE mailbox_id=%(src)s AND uid = ANY(%(uids)s::bigint[])), "
        "n AS (SELECT count(*) AS n FROM src), "
        "box AS (UPDATE mailboxes SET uidnext = uidnext + n.n, "
        "highestmodseq = highestmodseq + 1 FROM n WHERE id=%(dst)s AND n.n > 0 "
        "RETURNING uidnext - n.n AS first, highestmodseq), "
        f"ins AS (INSERT INTO messages (mailbox_id, uid, modseq, {_NEW_COLUMNS}) "
        f"SELECT %(dst)s, box.first + src.i - 1, box.highestmodseq, {_NEW_COLUMNS} "
        "FROM src, box) "
        "SELECT src.uid, box.first + src.i - 1 FROM src, box ORDER BY src.uid",
        {"src": source_id, "uids": wanted, "dst": target_id})
    return [(r[0], r[1]) for r in await cur.fetchall()]


async def expunge_rows(cur: Cursor, mailbox_id: int, uids: list[int]
                       ) -> tuple[list[int], list[str]]:
    """Remove messages and leave tombstones with one new MODSEQ (RFC 7162 §3.2.10),
    in one statement; (UIDs removed, their blobs, for release_blobs). The caller
    locks the mailbox first (lock_mailbox), as every writer of its messages does:
    the MODSEQ would be right without (the UPDATE waits for the row), but writers
    taking the message rows before the mailbox row can deadlock with those that
    take the mailbox first (one of them is then run again)."""
    if not uids:
        return [], []
    await cur.execute(
        "WITH gone AS (DELETE FROM messages WHERE mailbox_id=%(box)s "
        "AND uid = ANY(%(uids)s::bigint[]) RETURNING uid, blob), "
        "box AS (UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id=%(box)s "
        "AND EXISTS (SELECT 1 FROM gone) RETURNING highestmodseq), "
        "tomb AS (INSERT INTO expunged (mailbox_id, uid, modseq) "
        "SELECT %(box)s, gone.uid, box.highestmodseq FROM gone, box) "
        "SELECT uid, blob FROM gone ORDER BY uid",
        {"box": mailbox_id, "uids": sorted(set(uids))})
    rows = await cur.fetchall()
    return [r[0] for r in rows], [r[1] for r in rows]


async def size_of(cur: Cursor, mailbox_id: int, uids: list[int]) -> int:
    await cur.execute("SELECT coalesce(sum(size), 0) FROM messages WHERE mailbox_id=%s "
                      "AND uid = ANY(%s::bigint[])", (mailbox_id, sorted(set(uids))))
    return int((await cur.fetchone())[0])


class PostgresMailboxMessages:
    db: Database
    _index: Callable[[bytes], Indexed]             # meta.py PostgresMeta

    async def message_states(self, mailbox_id: int, since_modseq: int = 0,
                             from_uid: int = 0) -> list[MessageState]:
        rows = await self.db.fetchall("SELECT uid, flags, modseq FROM messages WHERE "
                                      "mailbox_id=%s AND uid>=%s AND modseq>%s ORDER BY uid",
                                      (mailbox_id, from_uid, since_modseq))
        return [MessageState(*r) for r in rows]

    async def expunged_since(self, mailbox_id: int, modseq: int) -> list[int]:
        return [r[0] for r in await self.db.fetchall(
            "SELECT uid FROM expunged WHERE mailbox_id=%s AND modseq>%s ORDER BY uid",
            (mailbox_id, modseq))]

    async def message_data(self, mailbox_id: int, uids: list[int], meta: bool
                           ) -> list[MessageData]:
        if not uids:
            return []
        cols = ("x.envelope, x.body, x.bodystructure, x.structure, x.header" if meta
                else "NULL, NULL, NULL, NULL, NULL")
        join = "LEFT JOIN message_meta x ON x.id=m.meta_id" if meta else ""
        rows = await self.db.fetchall(
            f"SELECT m.uid, m.flags, m.modseq, m.size, m.internaldate, m.blob, {cols} "
            f"FROM messages m {join} WHERE m.mailbox_id=%s AND m.uid = ANY(%s::bigint[]) "
            f"ORDER BY m.uid", (mailbox_id, sorted(set(uids))))
        return [MessageData(*r) for r in rows]

    async def store_flags(self, mailbox_id: int, uids: list[int], mode: str, flags: list[str],
                          unchangedsince: int | None = None
                          ) -> tuple[list[MessageState], list[int]]:
        given = list(dict.fromkeys(normalize_flag(f) for f in flags))
        wanted = sorted(set(uids))

        async def job(cur: Cursor) -> tuple[list[MessageState], list[int]]:
            box = (await lock_mailbox(cur, mailbox_id)).get(mailbox_id)
            if box is None:
                raise MailboxError("Mailbox was deleted", "NONEXISTENT")
            modseq = box[2] + 1
            # Read after the lock: a statement of its own sees every change committed
            # before it (READ COMMITTED), so UNCHANGEDSINCE tests the latest MODSEQ.
            await cur.execute("SELECT uid, flags, modseq FROM messages WHERE mailbox_id=%s "
                              "AND uid = ANY(%s::bigint[]) ORDER BY uid", (mailbox_id, wanted))
            changed, failed = flag_changes(await cur.fetchall(), mode, given,
                                           unchangedsince, modseq)
            if changed:
                await cur.execute(
                    "WITH u AS (UPDATE messages m SET flags=c.flags, modseq=%(modseq)s "
                    "FROM unnest(%(uids)s::bigint[], %(flags)s::text[]) c(uid, flags) "
                    "WHERE m.mailbox_id=%(box)s AND m.uid=c.uid) "
                    "UPDATE mailboxes SET highestmodseq=%(modseq)s WHERE id=%(box)s",
                    {"modseq": modseq, "box": mailbox_id, "uids": [s.uid for s in changed],
                     "flags": [s.flags for s in changed]})
            return changed, failed
        return await self.db.transaction(job)

    async def expunge(self, mailbox_id: int, uids: list[int]) -> list[int]:
        async def job(cur: Cursor) -> list[int]:
            if not (await lock_mailbox(cur, mailbox_id)):
                return []
            gone, blobs = await expunge_rows(cur, mailbox_id, uids)
            await release_blobs(cur, blobs)
            return gone
        return await self.db.transaction(job)

    async def append(self, mailbox_id: int, content: bytes, flags: list[str],
                     internaldate: float) -> tuple[int, int]:
        flag_text = " ".join(dict.fromkeys(normalize_flag(f) for f in flags))
        parsed = self._index(content)
        digest = digest_of(content)

        async def job(cur: Cursor) -> tuple[int, int]:
            box = (await lock_mailbox(cur, mailbox_id)).get(mailbox_id)
            if box is None:
                raise MailboxError("Mailbox was deleted", "TRYCREATE")
            await check_quota(cur, box[0], len(content))
            await store_blob(cur, digest, content)
            meta_id = await ensure_meta(cur, digest, parsed)
            [uid] = await add_messages(cur, mailbox_id, [NewMessage(
                digest, len(content), internaldate, flag_text, f"append-{digest[:16]}",
                meta_id)])
            return box[1], uid
        return await self.db.transaction(job)

    async def copy(self, source_id: int, uids: list[int], target_id: int, move: bool
                   ) -> tuple[int, list[tuple[int, int]]]:
        async def job(cur: Cursor) -> tuple[int, list[tuple[int, int]]]:
            boxes = await lock_mailbox(cur, source_id, target_id)
            if target_id not in boxes:
                raise MailboxError("Target mailbox was deleted", "TRYCREATE")
            account_id, uidvalidity, _ = boxes[target_id]
            if source_id != target_id or not move:
                await check_quota(cur, account_id, await size_of(cur, source_id, uids))
            pairs = await copy_rows(cur, source_id, uids, target_id)
            if move:
                _, blobs = await expunge_rows(cur, source_id, [s for s, _ in pairs])
                await release_blobs(cur, blobs)
            return uidvalidity, pairs
        return await self.db.transaction(job)
