"""The full-text index, kept off the acknowledgement path.

A delivery stores its message's decoded text as a pending row, in the transaction
that stores the message: nothing is lost by a crash, and the delivery does not wait
for the trigram index (a 100 KB text costs 2-3 ms of CPU to index, more than the rest
of its transaction). The writer moves pending rows into the index when its queue is
empty, or when the oldest has waited OVERDUE seconds, a bounded batch at a time
(`Indexer`, db.Writer's background work). SEARCH reads the pending rows as well, with
the same folding and the same substring test (store/sqlite/search.py), so a message is
found from the moment its delivery is acknowledged, indexed or not.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
import unicodedata

from ...message.meta import MessageMeta
from .db import deferrable

log = logging.getLogger("mailwright.store")

# One batch of the background indexer when the writer is idle: at most this many
# rows, and it stops after the row that takes its text past BATCH_CHARS (a few ms of
# indexing), so a delivery arriving meanwhile waits little.
BATCH_ROWS = 64
BATCH_CHARS = 256 * 1024
# Under a load that leaves the writer no idle moment, rows pending for OVERDUE seconds
# are indexed after each delivery batch, as many as that batch had jobs (up to
# OVERDUE_CHARS of text): the index keeps pace, the pending rows, which SEARCH scans,
# stay about OVERDUE seconds' worth, and acceptance slows to what the machine can
# index. Each such batch runs after the deliveries' waiters are woken, while their
# sessions go on: the index work (SQLite's, without the GIL) overlaps theirs.
OVERDUE = 1.0
OVERDUE_CHARS = 4 * 1024 * 1024

# Combining diacritical marks (the blocks for Latin, Greek, Cyrillic and symbols).
_MARKS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")


def fold(text: str) -> str:
    """What the text index holds and is asked for: case folded (SEARCH matching is
    case-insensitive, RFC 9051 §6.4.4) and diacritics taken off, so "cafe" finds
    "Café" (flexible matching, which RFC 9051 allows for TEXT and BODY). Composed
    again afterwards (NFC), so letters that decompose without marks (Hangul) are
    stored as written."""
    if text.isascii():
        return text.lower()
    bare = _MARKS.sub("", unicodedata.normalize("NFKD", text.casefold()))
    return unicodedata.normalize("NFC", bare)


def add_pending(c: sqlite3.Connection, meta_id: int, m: MessageMeta) -> None:
    """A new message's text, to be indexed later. Stored as decoded, not folded:
    folding is the indexer's work (and SEARCH's, for rows still pending)."""
    # OR REPLACE: a stale row under a reused rowid must not fail the delivery
    c.execute("INSERT OR REPLACE INTO message_text_pending (meta_id, queued, hdr, body) "
              "VALUES (?,?,?,?)", (meta_id, time.time(), m.header_text, m.text))


def index_now(c: sqlite3.Connection, meta_id: int, m: MessageMeta) -> None:
    """Index a message's text at once (the start-up re-parse, off any delivery)."""
    c.execute("DELETE FROM message_text_pending WHERE meta_id=?", (meta_id,))
    c.execute("INSERT OR REPLACE INTO message_text (rowid, hdr, body) VALUES (?,?,?)",
              (meta_id, fold(m.header_text), fold(m.text)))


def drop_text(c: sqlite3.Connection, meta_id: int) -> None:
    """A message's text leaves the index, or the pending rows: whichever holds it."""
    c.execute("DELETE FROM message_text WHERE rowid=?", (meta_id,))
    c.execute("DELETE FROM message_text_pending WHERE meta_id=?", (meta_id,))


def index_pending(c: sqlite3.Connection, rows: int = BATCH_ROWS, chars: int = BATCH_CHARS,
                  before: float | None = None) -> int:
    """Move the oldest pending rows into the index, in the caller's transaction: at
    most `rows`, no more once `chars` characters of text are taken, and only those
    stored before `before` if given. How many."""
    batch, size = [], 0
    cursor = c.execute("SELECT meta_id, hdr, body FROM message_text_pending "
                       "WHERE queued < ? ORDER BY meta_id LIMIT ?",
                       (float("inf") if before is None else before, rows))
    for meta_id, hdr, body in cursor:
        batch.append((meta_id, fold(hdr), fold(body)))
        size += len(hdr) + len(body)
        if size >= chars:
            break
    cursor.close()
    c.executemany("INSERT OR REPLACE INTO message_text (rowid, hdr, body) VALUES (?,?,?)",
                  batch)
    c.executemany("DELETE FROM message_text_pending WHERE meta_id=?",
                  [(row[0],) for row in batch])
    return len(batch)


class Indexer:
    """The writer's background work (db.Background): pending rows into the index,
    a batch whenever the writer is idle, and after each delivery batch as many
    overdue ones as that batch had jobs."""

    def __init__(self, overdue: float = OVERDUE):
        self.overdue = overdue

    def step(self, c: sqlite3.Connection, jobs: int) -> bool:
        oldest = c.execute("SELECT queued FROM message_text_pending ORDER BY meta_id "
                           "LIMIT 1").fetchone()
        if oldest is None:
            return False
        due = time.time() - self.overdue
        if not jobs or oldest[0] < due:
            # Not synced on its own: a crash that loses this commit leaves the rows
            # pending, to be indexed again; the next delivery's commit syncs it.
            with deferrable(c):
                if jobs:
                    index_pending(c, rows=jobs, chars=OVERDUE_CHARS, before=due)
                else:
                    index_pending(c)
        return True
