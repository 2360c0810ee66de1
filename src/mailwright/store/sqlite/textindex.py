"""The full-text index, kept off the acknowledgement path.

A delivery stores its message's text (decoded, folded: `fold`) in message_texts and
marks it pending, in the transaction that stores the message: nothing is lost by a
crash, and the delivery does not wait for the trigram index (a 100 KB text costs 2-5
ms of CPU to index, more than the rest of its transaction). The index's content is
message_texts itself, so a text is written once. SEARCH reads the pending texts as
well, with the same substring test (store/sqlite/search.py), so a message is found
from the moment its delivery is acknowledged, indexed or not.

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

from ...message.meta import MessageMeta
from ..text import fold
from .db import deferrable, insert_many

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


def add_texts(c: sqlite3.Connection, texts: list[tuple[int, MessageMeta]]) -> None:
    """New messages' texts (meta_id, parse), stored and marked pending (indexed later)."""
    now = time.time()
    rows = [(meta_id, fold(m.header_text), fold(m.text)) for meta_id, m in texts]
    # OR REPLACE: a stale row under a reused rowid must not fail the delivery
    insert_many(c, "INSERT OR REPLACE INTO message_texts (meta_id, hdr, body)", rows)
    insert_many(c, "INSERT OR REPLACE INTO message_text_pending (meta_id, queued, chars)",
                [(meta_id, now, len(hdr) + len(body)) for meta_id, hdr, body in rows])


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
    no more once `chars` characters of text are taken. How many."""
    batch, size = [], 0
    for meta_id, length in c.execute(
            # LEFT JOIN: a marker without its text (which nothing writes) is dropped.
            # Markers from before `chars` (0) have their texts measured.
            "SELECT p.meta_id, coalesce(nullif(p.chars, 0), "
            "length(t.hdr) + length(t.body), 0) "
            "FROM message_text_pending p LEFT JOIN message_texts t ON t.meta_id=p.meta_id "
            "ORDER BY p.meta_id LIMIT ?", (rows,)).fetchall():
        batch.append((meta_id,))
        size += length
        if size >= chars:
            break
    c.executemany("INSERT INTO message_text (rowid, hdr, body) SELECT meta_id, hdr, body "
                  "FROM message_texts WHERE meta_id=?", batch)
    c.executemany("DELETE FROM message_text_pending WHERE meta_id=?", batch)
    return len(batch)


class Indexer:
    """The writer's background work (db.Writer): pending texts into the index, a batch
    at a time, once deliveries have paused for `idle_delay`, or whenever the writer is
    free while more than `backlog` characters wait."""

    def __init__(self, idle_delay: float = IDLE_DELAY, backlog: int = BACKLOG_CHARS,
                 check: float = BACKLOG_CHECK):
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
        # Each batch in a transaction that is not synced on its own (deferrable): a
        # crash that undoes it leaves its texts pending, to be indexed again.
        with lock or contextlib.nullcontext(), deferrable(c):
            done = index_pending(c)
        self._summed = float("-inf")          # sum again before the next batch
        # Look again at once while there is progress; never spin without it.
        return 0.0 if done else None

    def _behind(self, c: sqlite3.Connection, now: float) -> bool:
        if now - self._summed >= self.check:
            self._summed = now
            self._waiting = c.execute("SELECT coalesce(sum(chars), 0) "
                                      "FROM message_text_pending").fetchone()[0]
        return self._waiting > self.backlog
