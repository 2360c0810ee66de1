"""The full-text index, kept off the acknowledgement path.

A delivery stores its message's text (decoded, folded: `fold`) in message_texts and
marks it pending, in the transaction that stores the message: nothing is lost by a
crash, and the delivery does not wait for the trigram index (a 100 KB text costs 2-5
ms of CPU to index, more than the rest of its transaction). The writer indexes
pending texts when its queue is empty, or once they are OVERDUE, a bounded batch at a
time (`Indexer`, db.Writer's background work); the index's content is message_texts
itself, so a text is written once. SEARCH reads the pending texts as well, with the
same substring test (store/sqlite/search.py), so a message is found from the moment
its delivery is acknowledged, indexed or not.
"""

from __future__ import annotations

import logging
import sqlite3
import time

from ...message.meta import MessageMeta
from ..text import fold
from .db import deferrable

log = logging.getLogger("mailwright.store")

# The writer indexes pending texts when it is idle and the oldest has waited
# IDLE_DELAY, so that a batch gathers many texts: FTS5 writes a segment per
# transaction, at a cost that grows with the distinct trigrams in it, not with the
# texts. Measured (store.deliver, 100 KB smtp-source text): batches of 1 MiB cost
# 30-55% more CPU per text than indexing each delivery batch, 4 MiB 12-15%; prose
# (more distinct trigrams per text) is about even. SEARCH scans what is pending.
IDLE_DELAY = 0.25
# One batch: at most this many texts, and it stops after the text that takes it
# past BATCH_CHARS characters (up to ~0.3 s of indexing prose on a slow core): a
# delivery arriving meanwhile waits for it, as it waits for a delivery batch's index
# work when indexing is done at delivery.
BATCH_ROWS = 256
BATCH_CHARS = 4 * 1024 * 1024
# Under a load that leaves the writer no idle moment, texts pending for OVERDUE
# seconds are indexed after each delivery batch: an idle batch's worth, and at least
# as many as that delivery batch had jobs. The index keeps pace, the pending texts
# stay about OVERDUE seconds' worth, and acceptance slows to what the machine can
# index. Each such batch runs after the deliveries' waiters are woken, while their
# sessions go on: the index work (SQLite's, without the GIL) overlaps theirs.
OVERDUE = 1.0


def add_text(c: sqlite3.Connection, meta_id: int, m: MessageMeta) -> None:
    """A new message's text, stored and marked pending (indexed later)."""
    # OR REPLACE: a stale row under a reused rowid must not fail the delivery
    c.execute("INSERT OR REPLACE INTO message_texts (meta_id, hdr, body) VALUES (?,?,?)",
              (meta_id, fold(m.header_text), fold(m.text)))
    c.execute("INSERT OR REPLACE INTO message_text_pending (meta_id, queued) VALUES (?,?)",
              (meta_id, time.time()))


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


def index_pending(c: sqlite3.Connection, rows: int = BATCH_ROWS, chars: int = BATCH_CHARS,
                  before: float | None = None, least: int = 0) -> int:
    """Index the oldest pending texts, in the caller's transaction: at most `rows`,
    no more once `chars` characters of text and `least` texts are taken, and only
    those stored before `before` if given. How many."""
    batch, size = [], 0
    for meta_id, length in c.execute(
            # LEFT JOIN: a marker without its text (which nothing writes) is dropped.
            "SELECT p.meta_id, coalesce(length(t.hdr) + length(t.body), 0) "
            "FROM message_text_pending p LEFT JOIN message_texts t ON t.meta_id=p.meta_id "
            "WHERE p.queued < ? "
            "ORDER BY p.meta_id LIMIT ?",
            (float("inf") if before is None else before, rows)).fetchall():
        batch.append((meta_id,))
        size += length
        if size >= chars and len(batch) >= least:
            break
    c.executemany("INSERT INTO message_text (rowid, hdr, body) SELECT meta_id, hdr, body "
                  "FROM message_texts WHERE meta_id=?", batch)
    c.executemany("DELETE FROM message_text_pending WHERE meta_id=?", batch)
    return len(batch)


class Indexer:
    """The writer's background work (db.Background): pending texts into the index,
    a batch when the writer is idle and the oldest has waited `idle_delay`, and
    overdue ones after each delivery batch (at least as many as it had jobs)."""

    def __init__(self, idle_delay: float = IDLE_DELAY, overdue: float = OVERDUE):
        self.idle_delay = idle_delay
        self.overdue = overdue

    def step(self, c: sqlite3.Connection, jobs: int) -> float | None:
        oldest = c.execute("SELECT queued FROM message_text_pending ORDER BY meta_id "
                           "LIMIT 1").fetchone()
        if oldest is None:
            return None
        now = time.time()
        # Each batch in a transaction that is not synced on its own (deferrable): a
        # crash that undoes it leaves its texts pending, to be indexed again.
        if jobs:
            if oldest[0] > now - self.overdue:
                return oldest[0] + self.idle_delay - now
            with deferrable(c):
                done = index_pending(c, rows=max(jobs, BATCH_ROWS),
                                     before=now - self.overdue, least=jobs)
        elif oldest[0] > now - self.idle_delay:
            return oldest[0] + self.idle_delay - now
        else:
            with deferrable(c):
                done = index_pending(c)
        # Look again at once while there is progress; never spin without it.
        return 0.0 if done else None
