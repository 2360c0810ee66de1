"""Parse once, for PostgreSQL: a message's metadata (FETCH views, sort and search keys)
and its full-text row, stored once per blob, and the start-up backfill that parses
rows stored without it (or by an older parse).

What is stored is exactly what the SQLite backend stores: the same columns in the
same order and the same folded search text, from the functions both share
(store/metarows.py `meta_values`, META_VERSION; store/text.py `fold`), so a message
searches and sorts alike on both backends and `migrate --from sqlite` can copy rows as they are.
"""

from __future__ import annotations

import asyncio

from ...message.meta import MessageMeta, parse_message
from ..mailboxes import RenderViews
from ..metarows import META_COLUMNS, META_VERSION, Indexed, meta_values
from ..text import fold
from .db import Cursor, Database

_INSERT_META = (
    f"WITH new AS (INSERT INTO message_meta (blob, {', '.join(META_COLUMNS)}) "
    f"VALUES (%s, {', '.join(['%s'] * len(META_COLUMNS))}) "
    f"ON CONFLICT (blob) DO NOTHING RETURNING id), "
    f"txt AS (INSERT INTO message_text (meta_id, hdr, body) SELECT id, %s, %s FROM new) "
    f"SELECT id FROM new UNION ALL SELECT id FROM message_meta WHERE blob=%s")
_UPDATE_META = (
    f"WITH upd AS (UPDATE message_meta SET {', '.join(f'{c}=%s' for c in META_COLUMNS)} "
    f"WHERE id=%s RETURNING id) "
    f"INSERT INTO message_text (meta_id, hdr, body) SELECT id, %s, %s FROM upd "
    f"ON CONFLICT (meta_id) DO UPDATE SET hdr=EXCLUDED.hdr, body=EXCLUDED.body")


def pg_text(value):
    """A str as PostgreSQL text holds it: text cannot contain NUL (a message may, in
    a decoded header or body), nor lone surrogates; other values pass as they are."""
    if not isinstance(value, str) or value.isascii() and "\x00" not in value:
        return value
    value = value.replace("\x00", "")
    try:
        value.encode()
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode()
    return value


def meta_params(indexed: Indexed) -> list:
    """message_meta's values (in META_COLUMNS order) as PostgreSQL takes them."""
    return [pg_text(v) for v in meta_values(indexed)]


def text_params(m: MessageMeta) -> tuple[str, str]:
    """message_text's hdr and body: what the SQLite backend's text index holds."""
    return pg_text(fold(m.header_text)), pg_text(fold(m.text))


async def insert_meta(cur: Cursor, digest: str, indexed: Indexed) -> None:
    """Store a message's parse once per blob (FETCH views, sort and search keys, the
    full-text row) in one statement, unless stored (a copy of a stored blob finds it
    done). Nothing is read back: it can go in a pipeline. The parse is made before
    the transaction, off the pool's loop."""
    await cur.execute(_INSERT_META, (digest, *meta_params(indexed),
                                     *text_params(indexed[0]), digest))


async def ensure_meta(cur: Cursor, digest: str, indexed: Indexed) -> int:
    """insert_meta, then its message_meta id."""
    await insert_meta(cur, digest, indexed)
    row = await cur.fetchone()
    if row is None:
        # A concurrent first insert of the same blob committed after this statement's
        # snapshot: ON CONFLICT waited for it, so a new statement sees it.
        await cur.execute("SELECT id FROM message_meta WHERE blob=%s", (digest,))
        row = await cur.fetchone()
    return row[0]


def _link_job(items: list[tuple[str, Indexed]]):
    """Store parses and point the messages of their blobs at them."""
    async def job(cur: Cursor) -> None:
        for digest, indexed in items:
            await cur.execute("UPDATE messages SET meta_id=%s WHERE blob=%s AND "
                              "meta_id IS NULL", (await ensure_meta(cur, digest, indexed), digest))
    return job


def _reparse_job(items: list[tuple[int, Indexed]]):
    """Replace the stored parse of older metadata rows by a new one."""
    async def job(cur: Cursor) -> None:
        # A row gone meanwhile (its last message expunged) updates nothing.
        await cur.executemany(_UPDATE_META, [
            (*meta_params(indexed), meta_id, *text_params(indexed[0]))
            for meta_id, indexed in items])
    return job


class PostgresMeta:
    db: Database
    render_views: RenderViews        # given by the composition root (imap/fetch.py)

    def _index(self, content: bytes) -> Indexed:
        """A message's parse and its FETCH views, made once per stored blob."""
        meta = parse_message(content)
        return meta, self.render_views(content, meta)

    async def backfill_meta(self, batch: int = 200) -> int:
        """Parse messages stored without metadata (copied from an older store), then
        parse again those whose metadata an older version made; a transaction per
        batch. Every node may run it at start: a batch another node parsed first is
        left as that node wrote it. How many were parsed."""
        return await self._parse_unparsed(batch) + await self._reparse_stale(batch)

    async def _parse_unparsed(self, batch: int) -> int:
        done = 0
        while True:
            digests = [r[0] for r in await self.db.fetchall(
                "SELECT DISTINCT blob FROM messages WHERE meta_id IS NULL LIMIT %s",
                (batch,))]
            if not digests:
                return done
            indexed = await self._index_blobs(digests)
            await self.db.transaction(_link_job(list(zip(digests, indexed, strict=True))))
            done += len(digests)

    async def _reparse_stale(self, batch: int) -> int:
        done = last = 0
        while True:
            # In id order, from where the last batch ended: one pass over the table.
            rows = await self.db.fetchall(
                "SELECT id, blob FROM message_meta WHERE id>%s AND version<%s ORDER BY id "
                "LIMIT %s", (last, META_VERSION, batch))
            if not rows:
                return done
            indexed = await self._index_blobs([r[1] for r in rows])
            await self.db.transaction(_reparse_job(
                [(r[0], parsed) for r, parsed in zip(rows, indexed, strict=True)]))
            done += len(rows)
            last = rows[-1][0]

    async def _index_blobs(self, digests: list[str]) -> list[Indexed]:
        # One blob in memory at a time (a batch of large messages would not fit):
        # a query per blob, on a path that runs once per upgraded store.
        out = []
        for digest in digests:
            out.append(await asyncio.to_thread(self._index, await self.read_blob(digest)))
        return out
