"""Parse once: a message's metadata (FETCH views, sort and search keys) and its
full-text index row (pending at first, textindex.py), stored once per blob, and the
start-up backfill that parses rows stored before (or by an older parse)."""

from __future__ import annotations

import asyncio
import sqlite3

from ...message.meta import parse_message
from ..blobs import BlobStore
from ..mailboxes import RenderViews
from ..metarows import META_COLUMNS, META_VERSION, Indexed, meta_values
from .db import insert_many, select_in
from .textindex import (
    BATCH_ROWS,
    Unmade,
    add_texts,
    drop_text,
    index_now,
    index_pending,
    inline_blobs,
    make_texts,
    store_texts,
    unmade,
)


def ensure_meta(c: sqlite3.Connection, digest: str, indexed: Indexed) -> int:
    """ensure_metas for one blob: its message_meta id."""
    return ensure_metas(c, [(digest, indexed)])[digest]


def ensure_metas(c: sqlite3.Connection, parses: list[tuple[str, Indexed]]) -> dict[str, int]:
    """Store each message's parse once per blob (FETCH views, sort and search keys, the
    text for the full-text index, indexed later); {digest: message_meta id}. A copy
    of a stored blob finds it done.
    The parse is made before the writer job, on the loop or in a thread: parsing
    here, on the writer thread, would hold the GIL against the loop for the whole
    batch."""
    wanted = dict(parses)                  # one parse per blob (local copies share it)
    digests = list(wanted)
    ids = dict(select_in(c, "SELECT blob, id FROM message_meta WHERE blob IN ({})",
                         digests))
    new = [d for d in digests if d not in ids]
    if not new:
        return ids
    # The ids SQLite would give them one by one (one more than the largest), given
    # here so that the rows go in as one statement.
    last = c.execute("SELECT coalesce(max(id), 0) FROM message_meta").fetchone()[0]
    ids.update((d, last + 1 + n) for n, d in enumerate(new))
    insert_many(c, f"INSERT INTO message_meta (id, blob, {', '.join(META_COLUMNS)})",
                [(ids[d], d, *meta_values(wanted[d])) for d in new])
    add_texts(c, [(ids[d], wanted[d][0]) for d in new])
    return ids


def meta_job(items: list[tuple[str, Indexed]]):
    def job(c: sqlite3.Connection) -> None:
        for digest, indexed in items:
            c.execute("UPDATE messages SET meta_id=? WHERE blob=? AND meta_id IS NULL",
                      (ensure_meta(c, digest, indexed), digest))
    return job


def reparse_job(items: list[tuple[int, Indexed]]):
    """Replace the stored parse of older metadata rows by a new one."""
    assignments = ", ".join(f"{column}=?" for column in META_COLUMNS)

    def job(c: sqlite3.Connection) -> None:
        for meta_id, indexed in items:
            # The row may have gone (its last message expunged) since it was read.
            if c.execute(f"UPDATE message_meta SET {assignments} WHERE id=?",
                         (*meta_values(indexed), meta_id)).rowcount:
                index_now(c, meta_id, indexed[0])
    return job


def drop_meta(c: sqlite3.Connection, digest: str) -> None:
    row = c.execute("SELECT id FROM message_meta WHERE blob=?", (digest,)).fetchone()
    if row:
        drop_text(c, row[0])
        c.execute("DELETE FROM message_meta WHERE id=?", row)


# Texts made (textindex.make_texts) per thread hop and writer job: messages until
# their marked lengths reach this (one larger message goes alone).
MAKE_CHARS = 4 * 1024 * 1024


class SQLiteMeta:
    conn: sqlite3.Connection
    blobs: BlobStore
    render_views: RenderViews        # given by the composition root (imap/fetch.py)

    def _index(self, content: bytes, lazy_text: bool = False) -> Indexed:
        """A message's parse and its FETCH views, made once per stored blob; with
        lazy_text its body text is decoded only if stored with it (parse_message)."""
        meta = parse_message(content, lazy_text)
        return meta, self.render_views(content, meta)

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
            await self._writer.submit_async(meta_job(list(zip(digests, indexed, strict=True))))
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
            await self._writer.submit_async(reparse_job(
                [(r[0], m) for r, m in zip(rows, indexed, strict=True)]))
            done += len(rows)
            last = rows[-1][0]

    async def index_pending(self, limit: int) -> int:
        """Index up to `limit` pending texts now, making those not made yet first
        (what the writer does in the background, textindex.Indexer); how many. For
        tests and tools."""
        done = 0
        while done < limit:
            await self._make_texts(unmade(self.conn))
            batch = min(limit - done, BATCH_ROWS)
            indexed = await self._writer.submit_async(
                lambda c, batch=batch: index_pending(c, batch))
            if not indexed:
                return done
            done += indexed
        return done

    async def _make_texts(self, items: list[Unmade]) -> None:
        """Texts not made yet (textindex.unmade), made in a thread and stored, a few
        messages at a time: a burst of large ones is never in memory whole."""
        chunk: list[Unmade] = []
        size = 0
        for n, item in enumerate(items, 1):
            chunk.append(item)
            size += item[2]
            if size >= MAKE_CHARS or n == len(items):
                made = await asyncio.to_thread(make_texts, self.blobs,
                                               inline_blobs(self.conn, chunk), chunk)
                await self._writer.submit_async(lambda c, chunk=chunk, made=made:
                                                store_texts(c, chunk, made))
                chunk, size = [], 0

    def _index_blobs(self, digests: list[str]) -> list[Indexed]:
        return [self._index(self._read_blob(d)) for d in digests]
