"""A Mailwright server with one part of its work taken away, for bench/accept_ceiling.py
only: how fast the rest goes is the most that making that part cheaper could give.
It is never a way to run a server: what it acknowledges may not be durable, or not be
stored at all.

    python bench/ceiling_server.py MODE --config FILE serve

MODE:
- as-is: nothing taken away (the same launcher, so that only the change differs);
- no-fsync: SQLite commits with synchronous=OFF and blob files are never synced;
- no-text-index: texts are stored as ever, but the indexer only drops their pending
  marks and never puts them into the full-text index;
- no-text-store: no text for SEARCH is stored at all (nor indexed);
- no-store-writes: the writer acknowledges local deliveries at once, with no blob file
  and no SQL. Everything before it still runs: SMTP, the text checks, the inbound
  checks, the parse and its FETCH views (done before the writer's job is queued).

The changes are made here, in the benchmark's process, before the server starts
(the workers are forked from it), so src/ has no switch for them.
"""

from __future__ import annotations

import sys

from mailwright import cli
from mailwright.store import blobs
from mailwright.store.sqlite import db, meta, textindex


def no_fsync() -> None:
    connect = db.connect

    def connect_unsynced(path, cache_mib=db.CACHE_MIB):
        conn = connect(path, cache_mib)
        conn.execute("PRAGMA synchronous=OFF")
        return conn

    db.connect = connect_unsynced
    blobs.BlobStore._sync = lambda self, written: None


def no_text_index() -> None:
    def drop_marks(c, rows=textindex.BATCH_ROWS, chars=textindex.BATCH_CHARS):
        return c.execute("DELETE FROM message_text_pending").rowcount

    textindex.index_pending = drop_marks


def no_text_store() -> None:
    meta.add_texts = lambda c, texts: None


def no_store_writes() -> None:
    run_batch = db.Writer._run_batch

    def acknowledge_deliveries(self, batch):
        # Local deliveries are the jobs with a `together` (store/sqlite/messages.py).
        self._wake([(job, True, None) for job in batch if job.together is not None])
        rest = [job for job in batch if job.together is None]
        if rest:
            run_batch(self, rest)

    db.Writer._run_batch = acknowledge_deliveries


MODES = {"as-is": lambda: None, "no-fsync": no_fsync, "no-text-index": no_text_index,
         "no-text-store": no_text_store, "no-store-writes": no_store_writes}


if __name__ == "__main__":
    mode = sys.argv.pop(1)
    if mode not in MODES:
        sys.exit(f"ceiling_server.py: MODE is one of {', '.join(MODES)}")
    MODES[mode]()
    sys.exit(cli.main(sys.argv[1:]))
