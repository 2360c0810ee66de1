"""Adding a message on PostgreSQL: its octets into `blobs` once, its parse, a row per
local copy and the queue rows, in one transaction (which this node's concurrent
deliveries share: group commit, batches.py); reading the octets back.

UIDs and MODSEQs (RFC 9051 §2.3.1.1, RFC 7162 §3.1.1) come from the mailbox row:
the statement that adds the copies locks their mailboxes (in id order, so two
deliveries into the same mailboxes never deadlock), reads UIDNEXT and HIGHESTMODSEQ
as last committed and moves them on; a delivery on another node waits for that
row until this one commits, then continues from there. So UIDs in a mailbox are
strictly ascending in commit order, and MODSEQs increase, across nodes.

Large messages. A message past SPOOL_MEMORY arrives as a Spooled (store/blobs.py):
its head in memory, the rest in a spool file. It is read whole once, in a thread,
in one allocation, for its parse (as the SQLite backend does) and hashed from the
same bytes; those are dropped before the transaction, which streams the octets from
the spool file into the blobs row by COPY in COPY_SLICE pieces. So a message is
whole in memory once (for the parse), and the database write holds a slice at a
time: a 24 MiB message peaks at about 25 MiB of Python memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property

from psycopg import errors

from ..base import StoreError
from ..blobs import Content, Spooled, digest_of
from ..messages import Delivery
from .batches import GroupCommit
from .db import Cursor, Database
from .meta import Indexed, insert_meta
from .queue import enqueue

# PostgreSQL's binary COPY framing (the COPY docs, "Binary Format"): the signature,
# flags and header extension length; a tuple of 2 fields, each length-prefixed; the
# trailer.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_COPY_TRAILER = struct.pack("!h", -1)
# read_blobs hands out blobs up to this size, many in one statement (FETCH of a slice of
# messages); larger ones are read one at a time so that few are in memory at once.
READ_TOGETHER_MAX = 64 * 1024

# The copies of one delivery: the first of each copy's mailboxes its account has,
# those mailboxes locked in id order, the next UIDs of each (several copies into one
# mailbox get consecutive ones) and one new MODSEQ per mailbox, the rows added and
# UIDNEXT/HIGHESTMODSEQ moved on. One statement. FOR NO KEY UPDATE returns the row
# as last committed (after waiting for another delivery's commit), which is what
# the UIDs count from.
_ADD_COPIES = """
WITH wanted AS (
    SELECT * FROM unnest(%(i)s::int[], %(account)s::bigint[], %(name)s::text[],
                         %(rank)s::int[]) AS w(i, account_id, name, rank)),
chosen AS (
    SELECT DISTINCT ON (w.i) w.i, b.id AS mailbox_id FROM wanted w
    JOIN mailboxes b ON b.account_id=w.account_id AND b.name=w.name
    ORDER BY w.i, w.rank),
locked AS MATERIALIZED (
    SELECT b.id, b.uidnext, b.highestmodseq + 1 AS modseq FROM mailboxes b
    WHERE b.id IN (SELECT mailbox_id FROM chosen) ORDER BY b.id FOR NO KEY UPDATE),
numbered AS (
    SELECT c.mailbox_id, l.modseq,
           l.uidnext - 1 + row_number() OVER (PARTITION BY c.mailbox_id ORDER BY c.i) AS uid
    FROM chosen c JOIN locked l ON l.id=c.mailbox_id),
bumped AS (
    UPDATE mailboxes b SET uidnext=n.top + 1, highestmodseq=n.modseq
    FROM (SELECT mailbox_id, max(uid) AS top, max(modseq) AS modseq FROM numbered
          GROUP BY mailbox_id) n
    WHERE b.id=n.mailbox_id)
INSERT INTO messages (mailbox_id, uid, blob, size, internaldate, flags, modseq,
                      message_id, meta_id)
SELECT mailbox_id, uid, %(blob)s, %(size)s, %(now)s, '', modseq, %(message_id)s,
       (SELECT id FROM message_meta WHERE blob=%(blob)s) FROM numbered
RETURNING mailbox_id, uid
"""


@dataclass
class _Blob:
    """A blob to store: its digest, and its octets (in memory, or spooled)."""
    digest: str
    content: Content


@dataclass
class _Delivering:
    """One delivery's writes, prepared: what its transaction (or its turn in a batch,
    batches.py) runs."""
    delivery: Delivery
    blobs: list[_Blob]
    parsed: Indexed | None
    now: float

    @property
    def accounts(self) -> list[int]:
        return [c.account_id for c in self.delivery.local]

    @property
    def mailboxes(self) -> list[str]:
        return [name for c in self.delivery.local for name in c.mailboxes]

    async def run(self, cur: Cursor) -> None:
        """The whole delivery: spooled blobs by COPY, then the rest in one pipeline
        (one round trip), then the check of its copies."""
        await self.copy_spooled(cur)
        async with cur.connection.cursor() as copies:
            async with cur.connection.pipeline():
                await self.write(cur, copies)
            await self.check(copies)

    async def copy_spooled(self, cur: Cursor) -> None:
        for blob in self.blobs:             # COPY, which a pipeline cannot carry
            if isinstance(blob.content, Spooled):
                await store_blob(cur, blob.digest, blob.content)

    async def write(self, cur: Cursor, copies: Cursor) -> None:
        """The statements, none of which needs the one before it answered (a
        pipeline may carry them): blobs, queue rows, the parse, then the copies on
        `copies`, last, so their mailboxes are locked for as little as the commit
        takes."""
        delivery, blobs, now = self.delivery, self.blobs, self.now
        for blob in blobs:
            if not isinstance(blob.content, Spooled):
                await store_blob(cur, blob.digest, blob.content)
        if delivery.remote:
            await enqueue(cur, delivery, blobs[-1].digest, len(blobs[-1].content), now)
        if delivery.local:
            await insert_meta(cur, blobs[0].digest, self.parsed)
            await add_copies(copies, delivery, blobs[0].digest, len(blobs[0].content), now)

    async def check(self, copies: Cursor) -> None:
        if self.delivery.local:
            await check_copies(copies, self.delivery)


class PostgresMessages:
    db: Database
    _index: Callable[[bytes], Indexed]                     # PostgresMeta's

    async def deliver(self, delivery: Delivery) -> None:
        # None: no such text (no local copy, no remote recipient); an empty text is one.
        local = delivery.local_content if delivery.local else None
        relay = delivery.relay_content if delivery.remote else None
        if isinstance(local, Spooled) or isinstance(relay, Spooled):
            blobs, parsed = await asyncio.to_thread(self._prepare, local, relay)
        else:
            # Small: on the loop, as the SQLite backend parses them (a thread hop
            # would cost more than the parse).
            blobs, parsed = self._prepare(local, relay)
        job = _Delivering(delivery, blobs, parsed, time.time())
        if any(isinstance(b.content, Spooled) for b in blobs):
            # Alone: a large message's COPY would hold a batch's mailboxes meanwhile.
            await self.db.transaction(job.run)
        else:
            await self._batches.submit(job)

    @cached_property
    def _batches(self) -> GroupCommit:
        return GroupCommit(self.db)

    def _prepare(self, local: Content | None, relay: Content | None
                 ) -> tuple[list[_Blob], Indexed | None]:
        """The blobs to store (the local and the relayed text, one blob if they are the
        same) and the local text's parse. A spooled local text is read whole here, the
        one time, for its parse and digest; a spooled relayed text is only hashed, a
        slice at a time. Blocking for spooled ones: run in a thread."""
        blobs: list[_Blob] = []
        parsed = None
        if local is not None:
            data = _read_whole(local) if isinstance(local, Spooled) else local
            parsed = self._index(data)
            blobs.append(_Blob(digest_of(data), local))
            del data
        if relay is not None:
            digest = (_streamed_digest(relay) if isinstance(relay, Spooled)
                      else digest_of(relay))
            if not blobs or blobs[0].digest != digest:
                blobs.append(_Blob(digest, relay))
        return blobs, parsed

    async def read_blob(self, digest: str) -> bytes:
        data = await self.db.run(_fetch_blob(self.db, digest))
        if data is None:
            # What reading a removed blob file raises in the SQLite backend (an IMAP
            # FETCH of a message expunged meanwhile answers for it).
            raise FileNotFoundError(f"no blob {digest}")
        return data


    async def read_blobs(self, digests: list[str]) -> dict[str, bytes]:
        return await self.db.run(_fetch_small_blobs(self.db, list(set(digests))))


async def _fetch_small_blobs(db: Database, digests: list[str]) -> dict[str, bytes]:
    """On the pool's loop: the blobs of `digests` up to READ_TOGETHER_MAX octets, in one
    statement (octet_length reads a stored value's header, not the value)."""
    async with db.pool.connection() as conn, conn.cursor(binary=True) as cur:
        await cur.execute("SELECT digest, data FROM blobs WHERE digest = ANY(%s) "
                          "AND octet_length(data) <= %s", (digests, READ_TOGETHER_MAX))
        return dict(await cur.fetchall())


async def _fetch_blob(db: Database, digest: str) -> bytes | None:
    """On the pool's loop: the octets, in binary (text would double them in hex)."""
    async with db.pool.connection() as conn, conn.cursor(binary=True) as cur:
        await cur.execute("SELECT data FROM blobs WHERE digest=%s", (digest,))
        row = await cur.fetchone()
    return row[0] if row else None


def _read_whole(content: Spooled) -> bytes:
    """A spooled message in memory in one allocation of its size (Spooled.read joins
    its slices, holding them and the result: twice the message at its peak). The
    buffer is sized first and filled in place; BytesIO hands it out without a copy."""
    buf = io.BytesIO()
    buf.seek(len(content) - 1)
    buf.write(b"\0")
    buf.seek(0)
    for piece in content.slices():
        buf.write(piece)
    return buf.getvalue()


def _streamed_digest(content: Spooled) -> str:
    h = hashlib.sha256()
    for piece in content.slices():
        h.update(piece)
    return h.hexdigest()


async def store_blob(cur: Cursor, digest: str, content: Content) -> None:
    """The blob stored (or found stored) and held against release until the
    transaction ends (blobrefs.py): a reference to it may follow."""
    if not isinstance(content, Spooled):
        # Inserted, or the stored row locked (DO UPDATE ... WHERE false locks the
        # conflicting row and changes nothing). %b: sent in binary, as it is.
        await cur.execute("INSERT INTO blobs (digest, data) VALUES (%s, %b) "
                          "ON CONFLICT (digest) DO UPDATE SET digest=EXCLUDED.digest "
                          "WHERE false", (digest, content))
        return
    for _ in range(3):
        await cur.execute("SELECT 1 FROM blobs WHERE digest=%s FOR KEY SHARE", (digest,))
        if await cur.fetchone():
            return
        try:
            # COPY has no ON CONFLICT: in a savepoint, so losing a race to another
            # transaction storing the same octets leaves this one usable.
            async with cur.connection.transaction():
                await _copy_blob(cur, digest, content)
            return
        except errors.UniqueViolation:
            continue
    raise StoreError(f"blob {digest} could not be stored")


async def _copy_blob(cur: Cursor, digest: str, content: Spooled) -> None:
    """COPY one row into blobs, the octets streamed from the spool in slices (each
    read in a thread: the pool's loop serves every other query meanwhile)."""
    key = digest.encode()
    pieces: Iterator[bytes] = content.slices()
    async with cur.copy("COPY blobs (digest, data) FROM STDIN (FORMAT BINARY)") as copy:
        await copy.write(_COPY_HEADER + struct.pack("!hi", 2, len(key)) + key
                         + struct.pack("!i", len(content)))
        while piece := await asyncio.to_thread(next, pieces, b""):
            await copy.write(piece)
        await copy.write(_COPY_TRAILER)


async def add_copies(cur: Cursor, delivery: Delivery, blob: str, size: int, now: float
                     ) -> None:
    """A message row per local copy, in the first of its mailboxes its account has,
    with the blob's stored parse; check_copies (once answered) says if each had one."""
    rows = [(i, copy.account_id, name, rank) for i, copy in enumerate(delivery.local)
            for rank, name in enumerate(copy.mailboxes)]
    await cur.execute(_ADD_COPIES, {
        "i": [r[0] for r in rows], "account": [r[1] for r in rows],
        "name": [r[2] for r in rows], "rank": [r[3] for r in rows],
        "blob": blob, "size": size, "now": now, "message_id": delivery.message_id})


async def check_copies(cur: Cursor, delivery: Delivery) -> None:
    """After add_copies on cur: a StoreError (undoing the delivery) for a copy whose
    account has none of its mailboxes, as the SQLite backend refuses it."""
    if len(await cur.fetchall()) == len(delivery.local):
        return
    for copy in delivery.local:             # which one? (the transaction is undone)
        await cur.execute("SELECT 1 FROM mailboxes WHERE account_id=%s AND name = ANY(%s)",
                          (copy.account_id, list(copy.mailboxes)))
        if not await cur.fetchone():
            raise StoreError(f"account {copy.account_id} has none of "
                             f"{', '.join(copy.mailboxes)}")
    raise StoreError("a local copy found no mailbox")

