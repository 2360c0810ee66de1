"""Messages in mailboxes: the one way a message enters a mailbox (add_to_mailboxes:
delivery, APPEND, COPY/MOVE), copies, expunges with tombstones, flags and MODSEQ
(RFC 7162), and what FETCH reads."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass

from ..base import StoreError
from ..blobs import Content, Spool, Spooled, Written
from ..mailboxes import (
    MailboxError,
    MessageData,
    MessageState,
    NewMessage,
    flag_changes,
    normalize_flag,
)
from ..messages import Delivery, LocalCopy
from .blobrefs import release_blobs
from .db import MAX_VARIABLES, insert_many, select_in
from .meta import Indexed, ensure_meta, ensure_metas
from .queue import enqueue
from .quota import check_quota

# Reading a blob file larger than this may touch the disk for a while: read_blob
# reads it in a thread.
READ_IN_THREAD = 256 * 1024


class SQLiteMessages:
    conn: sqlite3.Connection

    # --- messages -----------------------------------------------------------------
    async def message_states(self, mailbox_id: int, since_modseq: int = 0,
                       from_uid: int = 0) -> list[MessageState]:
        # Changes since a MODSEQ (after every command of a selected session) are found
        # by messages_modseq: "+uid" keeps SQLite from walking the mailbox's (mailbox_id,
        # uid) index instead, in order, reading every row (2 ms a command at 10,000
        # messages). Arrivals from a UID (since_modseq 0) are found by that one.
        uid_term = "+uid>=?" if since_modseq else "uid>=?"
        rows = self.conn.execute(f"SELECT uid, flags, modseq FROM messages WHERE "
                                 f"mailbox_id=? AND {uid_term} AND modseq>? ORDER BY uid",
                                 (mailbox_id, from_uid, since_modseq))
        return [MessageState(*r) for r in rows]

    async def expunged_since(self, mailbox_id: int, modseq: int) -> list[int]:
        return [r[0] for r in self.conn.execute(
            "SELECT uid FROM expunged WHERE mailbox_id=? AND modseq>? ORDER BY uid",
            (mailbox_id, modseq))]

    async def message_data(self, mailbox_id: int, uids: list[int], meta: bool) -> list[MessageData]:
        if not uids:
            return []
        cols = ("x.envelope, x.body, x.bodystructure, x.structure, x.header" if meta
                else "NULL, NULL, NULL, NULL, NULL")
        join = "LEFT JOIN message_meta x ON x.id=m.meta_id" if meta else ""
        out = []
        for lo, hi in ranges(uids):
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
            rows = [row for lo, hi in ranges(uids) for row in c.execute(
                "SELECT uid, flags, modseq FROM messages WHERE mailbox_id=? "
                "AND uid BETWEEN ? AND ?", (mailbox_id, lo, hi))]
            changed, failed = flag_changes(rows, mode, given, unchangedsince, modseq)
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
            return expunge_rows(c, mailbox_id, uids, release_blobs)
        gone, files = await self._writer.submit_async(job)
        await self._unlink(files)
        return gone

    async def append(self, mailbox_id: int, content: bytes, flags: list[str],
                     internaldate: float) -> tuple[int, int]:
        flag_text = " ".join(dict.fromkeys(normalize_flag(f) for f in flags))
        parsed = self._index(content, lazy_text=True)

        def job(c: sqlite3.Connection, digests: list[str]) -> tuple[int, int]:
            box = c.execute("SELECT account_id, uidvalidity FROM mailboxes WHERE id=?",
                            (mailbox_id,)).fetchone()
            if box is None:
                raise MailboxError("Mailbox was deleted", "TRYCREATE")
            check_quota(c, box[0], len(content))
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
                check_quota(c, box[0], size)
            pairs = copy_rows(c, source_id, uids, target_id)
            files: list[str] = []
            if move:
                _, files = expunge_rows(c, source_id, [s for s, _ in pairs], release_blobs)
            return (box[1], pairs), files
        result, files = await self._writer.submit_async(job)
        await self._unlink(files)
        return result

    # --- delivery ----------------------------------------------------------
    def spool(self) -> Spool:
        return self.blobs.spool()

    async def deliver(self, delivery: Delivery) -> None:
        local, relay = delivery.local_content, delivery.relay_content
        # Parsed once for every local copy, before the writer job (see ensure_meta):
        # on the loop (on the writer thread it would hold the GIL against the loop for
        # a whole batch), or for a spooled message in a thread (see _prepare_large).
        parsed = None
        if isinstance(local, Spooled) or isinstance(relay, Spooled):
            local, relay, parsed = await asyncio.to_thread(
                self._prepare_large, local if delivery.local else b"",
                relay if delivery.remote else b"")
        elif delivery.local:
            parsed = self._index(local, lazy_text=True)
        blobs = []
        if delivery.local:
            blobs.append(local)
        if delivery.remote:
            blobs.append(relay)
        now = time.time()
        copies = LocalCopies(delivery.local, parsed, len(local), now, delivery.message_id)
        relay_size = len(relay)

        def job(c: sqlite3.Connection, digests: list[str]) -> None:
            if delivery.local:
                deliver_locally(c, [(digests, copies)])
            if delivery.remote:
                enqueue(c, delivery, digests[-1], relay_size, now)
        if delivery.remote:
            await self._writer.submit_async(job, tuple(blobs))
        else:           # the batch's local deliveries go in together (db.Job.together)
            await self._writer.submit_async(job, tuple(blobs), deliver_locally, copies)

    def _prepare_large(self, local: Content, relay: Content
                       ) -> tuple[Content | Written, Content | Written, Indexed | None]:
        """Spooled copies written to their blob files now, and the local copy parsed
        from its file: read back in one allocation, the only time the message is
        whole in memory. Blocking: runs in a thread."""
        if isinstance(local, Spooled):
            local = self.blobs.prewrite(local)
        if isinstance(relay, Spooled):
            relay = self.blobs.prewrite(relay)
        parsed = None
        if local:
            parsed = self._index(local.read() if isinstance(local, Written) else local,
                                 lazy_text=True)
        return local, relay, parsed

    # --- reading -------------------------------------------------------------------
    async def read_blob(self, digest: str) -> bytes:
        data = self._inline_blob(digest)
        if data is not None:
            return data
        # A large file may touch the disk for a while: read it in a thread. Smaller
        # ones come from the page cache faster than a thread hop would take.
        if self.blobs.path(digest).stat().st_size > READ_IN_THREAD:
            return await asyncio.to_thread(self.blobs.read, digest)
        return self.blobs.read(digest)

    async def read_blobs(self, digests: list[str]) -> dict[str, bytes]:
        # Only the inline ones (at most INLINE_BLOB_MAX each): files are read one at a
        # time by read_blob, so that many large ones are never in memory together.
        return dict(select_in(self.conn, "SELECT digest, data FROM blob_inline "
                                         "WHERE digest IN ({})", list(dict.fromkeys(digests))))

    def _read_blob(self, digest: str) -> bytes:
        """read_blob for code already in a thread (the backfill): blocking."""
        data = self._inline_blob(digest)
        return data if data is not None else self.blobs.read(digest)

    def _inline_blob(self, digest: str) -> bytes | None:
        row = self.conn.execute("SELECT data FROM blob_inline WHERE digest=?",
                                (digest,)).fetchone()
        return row[0] if row else None


@dataclass(frozen=True)
class LocalCopies:
    """What a delivery stores in its local mailboxes, besides its blob's digest."""
    copies: list[LocalCopy]
    parsed: Indexed | None
    size: int
    internaldate: float
    message_id: str


def deliver_locally(c: sqlite3.Connection, deliveries: list[tuple[list[str], LocalCopies]]
                    ) -> list[None]:
    """Deliveries into their local mailboxes, each blob's parse stored once: a batch's
    deliveries go in as one statement per table (db.Job.together), one alone too."""
    metas = ensure_metas(c, [(digests[0], d.parsed) for digests, d in deliveries])
    boxes = iter(first_mailboxes(c, [copy for _, d in deliveries for copy in d.copies]))
    new: dict[int, list[NewMessage]] = {}
    for digests, d in deliveries:
        for _ in d.copies:
            new.setdefault(next(boxes), []).append(NewMessage(
                digests[0], d.size, d.internaldate, "", d.message_id, metas[digests[0]]))
    add_to_mailboxes(c, new)
    return [None] * len(deliveries)


def first_mailboxes(c: sqlite3.Connection, copies: list[LocalCopy]) -> list[int]:
    """For each copy, the first of its mailboxes that its account has."""
    names = list(dict.fromkeys((copy.account_id, name) for copy in copies
                               for name in copy.mailboxes))
    found: dict[tuple[int, str], int] = {}
    per = MAX_VARIABLES // 2
    for i in range(0, len(names), per):
        chunk = names[i:i + per]
        # ORed pairs: each an equality lookup in the (account_id, name) index
        found.update(((a, n), box) for a, n, box in c.execute(
            "SELECT account_id, name, id FROM mailboxes WHERE "
            + " OR ".join(["(account_id=? AND name=?)"] * len(chunk)),
            [v for pair in chunk for v in pair]))
    out = []
    for copy in copies:
        box = next((found[(copy.account_id, name)] for name in copy.mailboxes
                    if (copy.account_id, name) in found), None)
        if box is None:
            raise StoreError(f"account {copy.account_id} has none of "
                             f"{', '.join(copy.mailboxes)}")
        out.append(box)
    return out


def ranges(uids: list[int]) -> list[tuple[int, int]]:
    """Sorted UIDs as few (low, high) runs, for range queries."""
    out: list[list[int]] = []
    for uid in sorted(set(uids)):
        if out and uid == out[-1][1] + 1:
            out[-1][1] = uid
        else:
            out.append([uid, uid])
    return [(a, b) for a, b in out]


def _size_of(c: sqlite3.Connection, mailbox_id: int, uids: list[int]) -> int:
    total = 0
    for lo, hi in ranges(uids):
        total += c.execute("SELECT coalesce(sum(size), 0) FROM messages WHERE mailbox_id=? "
                           "AND uid BETWEEN ? AND ?", (mailbox_id, lo, hi)).fetchone()[0]
    return total


def add_messages(c: sqlite3.Connection, mailbox_id: int, messages: list[NewMessage]
                 ) -> list[int]:
    """add_to_mailboxes for one mailbox: the new messages' UIDs."""
    return add_to_mailboxes(c, {mailbox_id: messages}).get(mailbox_id, [])


def add_to_mailboxes(c: sqlite3.Connection, new: dict[int, list[NewMessage]]
                     ) -> dict[int, list[int]]:
    """Add messages to mailboxes: in each, the next UIDs (RFC 9051 §2.3.1.1), one new
    MODSEQ for all of them (RFC 7162 §3.1.1), UIDNEXT and HIGHESTMODSEQ moved on. The
    one way a message enters a mailbox (delivery, APPEND, COPY/MOVE); their UIDs."""
    new = {box: messages for box, messages in new.items() if messages}
    if not new:
        return {}
    boxes = {r[0]: (r[1], r[2]) for r in select_in(
        c, "SELECT id, uidnext, highestmodseq FROM mailboxes WHERE id IN ({})", list(new))}
    rows, moved, uids = [], [], {}
    for mailbox_id, messages in new.items():
        if mailbox_id not in boxes:
            raise MailboxError("Mailbox was deleted", "TRYCREATE")
        first, modseq = boxes[mailbox_id][0], boxes[mailbox_id][1] + 1
        uids[mailbox_id] = list(range(first, first + len(messages)))
        rows += [(mailbox_id, uid, m.blob, m.size, m.internaldate, m.flags, modseq,
                  m.message_id, m.meta_id)
                 for uid, m in zip(uids[mailbox_id], messages, strict=True)]
        moved.append((first + len(messages), modseq, mailbox_id))
    insert_many(c, "INSERT INTO messages (mailbox_id, uid, blob, size, internaldate, "
                   "flags, modseq, message_id, meta_id)", rows)
    c.executemany("UPDATE mailboxes SET uidnext=?, highestmodseq=? WHERE id=?", moved)
    return uids


def copy_rows(c: sqlite3.Connection, source_id: int, uids: list[int], target_id: int
               ) -> list[tuple[int, int]]:
    """Copy messages (same blob, flags kept, RFC 9051 §6.4.7) to new UIDs in the target."""
    rows = []
    for lo, hi in ranges(uids):
        rows += c.execute("SELECT uid, blob, size, internaldate, flags, message_id, meta_id "
                          "FROM messages "
                          "WHERE mailbox_id=? AND uid BETWEEN ? AND ? ORDER BY uid",
                          (source_id, lo, hi)).fetchall()
    wanted = set(uids)
    rows = [r for r in rows if r[0] in wanted]
    new = add_messages(c, target_id, [NewMessage(*r[1:]) for r in rows])
    return [(r[0], uid) for r, uid in zip(rows, new, strict=True)]


def expunge_rows(c: sqlite3.Connection, mailbox_id: int, uids: list[int],
                  release=None) -> tuple[list[int], list[str]]:
    """Remove messages, leave tombstones with the new MODSEQ (RFC 7162 §3.2.10), and
    release blobs nothing references any more (files returned for unlinking)."""
    if not uids:
        return [], []
    gone, blobs = [], []
    for lo, hi in ranges(uids):
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
