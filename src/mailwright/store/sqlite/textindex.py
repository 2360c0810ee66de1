"""The full-text index, kept off the acknowledgement path.

A delivery stores its message's text (decoded, folded: `fold`) in message_texts and
marks it pending, in the transaction that stores the message: nothing is lost by a
crash, and the delivery does not wait for the trigram index (a 100 KB text costs 2-5
ms of CPU to index, more than the rest of its transaction). The index's content is
message_texts itself, so a text is written once. SEARCH reads the pending texts as
well, with the same substring test (store/sqlite/search.py), so a message is found
from the moment its delivery is acknowledged, indexed or not.

A long text (DEFERRED_CHARS) is not stored with its delivery: only its mark is. Its
pages were most of what the writer wrote for a large message, under the write lock
that every process takes in turn. Measured (bench/smtp_accept.py, 600 x 100 KB, two
workers): 773 -> 1,092 msg/s, 0.79x -> 1.11x Postfix (1.07x in a second run). The
text is made from the stored message later (`make_texts`): by the indexer just before
it indexes it, or by a SEARCH TEXT/BODY of its mailbox before the search runs. So
SEARCH still finds the message as soon as it is acknowledged; the first such search
after a burst pays for making the texts (600 texts of 100 KB in one mailbox: 0.46 s,
then 56 ms). A crash loses nothing: the mark stays until the text is indexed, and the
message holds it.

One writer indexes: the primary process's (`Indexer`, db.Writer's background work; the
other workers' writers only store texts), so index batches never queue behind each
other. It indexes when deliveries pause, and takes turns with them only once the texts
waiting pass a bound: a burst of mail is accepted at the pace of the rest of delivery
(the index costs 25-45% of a delivery's CPU: bench/profile_accept.py) and indexed when
it ends.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time

from ...message.meta import MessageMeta, parse_message
from ..blobs import BlobStore
from ..text import fold
from .db import deferrable, insert_many, select_in

log = logging.getLogger("mailwright.store")

# Deliveries have paused when no text has been stored (by any process) for IDLE_DELAY:
# the indexer takes a batch then, and the next at once, until none is left. FTS5 writes
# a segment per transaction, at a cost that grows with the distinct trigrams in it, not
# with the texts: batches gathered over a pause cost less per text. Measured
# (store.deliver, 100 KB smtp-source text): batches of 1 MiB cost 30-55% more CPU per
# text than indexing each delivery batch, 4 MiB 12-15%; prose is about even.
IDLE_DELAY = 0.25
# One batch: at most this many texts, and it stops after the text that takes it past
# BATCH_CHARS characters (up to ~0.3 s of indexing prose on a slow core): a delivery
# arriving meanwhile waits for it.
BATCH_ROWS = 256
BATCH_CHARS = 4 * 1024 * 1024
# While deliveries go on, texts wait unindexed up to BACKLOG_CHARS characters. Past
# that the indexer takes a batch whenever its writer has no delivery waiting: the
# index keeps pace, and acceptance slows to what the machine can index. The bound is
# what a SEARCH TEXT/BODY may have to scan besides the index: at most 64 MiB. Measured
# on this project's 2-core test machine, 660 pending texts of 100 KB in one mailbox:
# a string found nowhere 100 ms (0.3 ms once indexed), one in every text 36 ms (37).
BACKLOG_CHARS = 64 * 1024 * 1024
# While deliveries go on, the waiting characters are summed at most this often.
BACKLOG_CHECK = 0.5
# A text of at least this many characters (header fields and body, before folding) is
# made after its delivery, from the stored message (make_texts). 32 Ki characters come
# from messages of ~32 KB and more, where the text's own pages are most of what the
# delivery would write.
DEFERRED_CHARS = 32 * 1024


def add_texts(c: sqlite3.Connection, texts: list[tuple[int, MessageMeta]]) -> None:
    """New messages' texts (meta_id, parse), stored and marked pending (indexed later);
    a long one (DEFERRED_CHARS) is only marked, and made later (make_texts)."""
    now = time.time()
    rows, marks = [], []
    for meta_id, m in texts:
        # Decided without decoding the body (text_size is an upper bound): a deferred
        # text is decoded once, when it is made.
        chars = len(m.header_text) + m.text_size
        if chars < DEFERRED_CHARS:
            hdr, body = fold(m.header_text), fold(m.text)
            rows.append((meta_id, hdr, body))
            chars = len(hdr) + len(body)
        marks.append((meta_id, now, chars))
    # OR REPLACE: a stale row under a reused rowid must not fail the delivery
    insert_many(c, "INSERT OR REPLACE INTO message_texts (meta_id, hdr, body)", rows)
    insert_many(c, "INSERT OR REPLACE INTO message_text_pending (meta_id, queued, chars)",
                marks)


# An unmade text: (meta_id, its message's blob digest, None if its metadata is gone;
# its length as marked).
Unmade = tuple[int, str | None, int]


def unmade(c: sqlite3.Connection, mailbox_id: int | None = None) -> list[Unmade]:
    """Pending texts not stored yet (add_texts): among the oldest pending texts up to
    a batch for the indexer (BATCH_ROWS, BATCH_CHARS), or all of one mailbox's."""
    if mailbox_id is not None:
        # From the pending rows (few, and none once indexed), never the mailbox's
        # messages: CROSS JOIN fixes the order, "+" keeps the mailbox index unused.
        return c.execute(
            "SELECT DISTINCT p.meta_id, x.blob, p.chars FROM message_text_pending p "
            "CROSS JOIN message_meta x CROSS JOIN messages m WHERE x.id=p.meta_id "
            "AND NOT EXISTS (SELECT 1 FROM message_texts t WHERE t.meta_id=p.meta_id) "
            "AND m.blob=x.blob AND +m.mailbox_id=? ORDER BY p.meta_id",
            (mailbox_id,)).fetchall()
    out, size = [], 0
    for meta_id, digest, chars, missing in c.execute(
            "SELECT p.meta_id, x.blob, p.chars, NOT EXISTS (SELECT 1 FROM message_texts t "
            "WHERE t.meta_id=p.meta_id) FROM message_text_pending p "
            "LEFT JOIN message_meta x ON x.id=p.meta_id ORDER BY p.meta_id LIMIT ?",
            (BATCH_ROWS,)):
        if missing:
            out.append((meta_id, digest, chars))
        size += chars
        if size >= BATCH_CHARS:
            break
    return out


def inline_blobs(c: sqlite3.Connection, items: list[Unmade]) -> dict[str, bytes]:
    """The messages of these that are small blobs, by digest (the others are files:
    BlobStore), for make_texts."""
    return dict(select_in(c, "SELECT digest, data FROM blob_inline WHERE digest IN ({})",
                          [digest for _, digest, _ in items if digest is not None]))


def make_texts(blobs: BlobStore, inline: dict[str, bytes],
               items: list[Unmade]) -> list[tuple[int, str, str]]:
    """The texts of unmade items, (meta_id, header fields, body) folded as add_texts
    folds them: each message read (from `inline`, or its file) and parsed. Blocking, and
    no SQL: call it outside the write lock, in a thread if on an event loop. A message
    that cannot be read (its file gone, a disk error) gets an empty text: the index
    takes its texts in order, so one that never came would hold up all after it."""
    out = []
    for meta_id, digest, _ in items:
        if digest is None:
            continue                           # its metadata went: store_texts drops it
        try:
            data = inline.get(digest)
            m = parse_message(blobs.read(digest) if data is None else data)
            out.append((meta_id, fold(m.header_text), fold(m.text)))
        except Exception as e:    # the parse took this message at delivery: I/O only
            log.error("message %s cannot be read (%s): its text is left empty", digest, e)
            out.append((meta_id, "", ""))
    return out


def store_texts(c: sqlite3.Connection, items: list[Unmade],
                made: list[tuple[int, str, str]]) -> None:
    """make_texts' texts into message_texts, each only while its message is still
    pending (an expunge meanwhile took its mark), and one made already is kept (a
    SEARCH and the indexer may make the same text). A mark whose metadata is gone
    (which nothing leaves) is dropped."""
    c.executemany("INSERT OR IGNORE INTO message_texts (meta_id, hdr, body) SELECT ?, ?, ? "
                  "WHERE EXISTS (SELECT 1 FROM message_text_pending WHERE meta_id=?)",
                  [(meta_id, hdr, body, meta_id) for meta_id, hdr, body in made])
    c.executemany("DELETE FROM message_text_pending WHERE meta_id=?",
                  [(meta_id,) for meta_id, digest, _ in items if digest is None])


def index_now(c: sqlite3.Connection, meta_id: int, m: MessageMeta) -> None:
    """Store and index a message's text at once, replacing what it had (the
    start-up re-parse, off any delivery)."""
    drop_text(c, meta_id)
    c.execute("INSERT INTO message_texts (meta_id, hdr, body) VALUES (?,?,?)",
              (meta_id, fold(m.header_text), fold(m.text)))
    c.execute("INSERT INTO message_text (rowid, hdr, body) SELECT meta_id, hdr, body "
              "FROM message_texts WHERE meta_id=?", (meta_id,))


def drop_text(c: sqlite3.Connection, meta_id: int) -> None:
    """A message's text goes, and out of the index if it was indexed."""
    if not c.execute("DELETE FROM message_text_pending WHERE meta_id=?",
                     (meta_id,)).rowcount:
        # An index over external content forgets a row given the values it indexed.
        c.execute("INSERT INTO message_text (message_text, rowid, hdr, body) "
                  "SELECT 'delete', meta_id, hdr, body FROM message_texts WHERE meta_id=?",
                  (meta_id,))
    c.execute("DELETE FROM message_texts WHERE meta_id=?", (meta_id,))


def index_pending(c: sqlite3.Connection, rows: int = BATCH_ROWS,
                  chars: int = BATCH_CHARS) -> int:
    """Index the oldest pending texts, in the caller's transaction: at most `rows`,
    no more once `chars` characters of text are taken. How many. A text not made yet
    (DEFERRED_CHARS) stops the batch: the caller makes those first (make_pending)."""
    batch, size = [], 0
    for meta_id, made, length in c.execute(
            # Markers from before `chars` (0) have their texts measured.
            "SELECT p.meta_id, t.meta_id IS NOT NULL, coalesce(nullif(p.chars, 0), "
            "length(t.hdr) + length(t.body), 0) "
            "FROM message_text_pending p LEFT JOIN message_texts t ON t.meta_id=p.meta_id "
            "ORDER BY p.meta_id LIMIT ?", (rows,)).fetchall():
        if not made:
            break
        batch.append((meta_id,))
        size += length
        if size >= chars:
            break
    c.executemany("INSERT INTO message_text (rowid, hdr, body) SELECT meta_id, hdr, body "
                  "FROM message_texts WHERE meta_id=?", batch)
    c.executemany("DELETE FROM message_text_pending WHERE meta_id=?", batch)
    return len(batch)


def make_pending(c: sqlite3.Connection, blobs: BlobStore,
                 lock: contextlib.AbstractContextManager | None = None) -> int:
    """Make the unmade texts of the indexer's next batch (unmade): read and parsed
    without the write lock, stored in a transaction of their own under it (not synced
    by itself: a crash that undoes it leaves them to be made again). How many."""
    items = unmade(c)
    if items:
        made = make_texts(blobs, inline_blobs(c, items), items)
        with lock or contextlib.nullcontext(), deferrable(c):
            store_texts(c, items, made)
    return len(items)


class Indexer:
    """The writer's background work (db.Writer): pending texts into the index, a batch
    at a time, once deliveries have paused for `idle_delay`, or whenever the writer is
    free while more than `backlog` characters wait."""

    def __init__(self, blobs: BlobStore, idle_delay: float = IDLE_DELAY,
                 backlog: int = BACKLOG_CHARS, check: float = BACKLOG_CHECK):
        self.blobs = blobs                    # where the texts not made yet are made from
        self.idle_delay = idle_delay
        self.backlog = backlog
        self.check = check
        self._summed = float("-inf")          # when the waiting characters were summed
        self._waiting = 0

    def step(self, c: sqlite3.Connection,
             lock: contextlib.AbstractContextManager | None = None) -> float | None:
        """db.Background.step: `lock` (the WriteLock) is held around the indexing
        transaction only; None for a connection that writes alone (tests, tools)."""
        newest = c.execute("SELECT queued FROM message_text_pending ORDER BY meta_id DESC "
                           "LIMIT 1").fetchone()
        if newest is None:
            return None
        now = time.time()
        paused_in = newest[0] + self.idle_delay - now
        if paused_in > 0 and not self._behind(c, now):
            return paused_in
        made = make_pending(c, self.blobs, lock)
        # Each batch in a transaction that is not synced on its own (deferrable): a
        # crash that undoes it leaves its texts pending, to be indexed again.
        with lock or contextlib.nullcontext(), deferrable(c):
            done = index_pending(c)
        self._summed = float("-inf")          # sum again before the next batch
        # Look again at once while there is progress; never spin without it.
        return 0.0 if done or made else None

    def _behind(self, c: sqlite3.Connection, now: float) -> bool:
        if now - self._summed >= self.check:
            self._summed = now
            self._waiting = c.execute("SELECT coalesce(sum(chars), 0) "
                                      "FROM message_text_pending").fetchone()[0]
        return self._waiting > self.backlog
