"""Blobs are shared (every copy of a message, the queue, finished messages kept for a
while): one is released, with its metadata, once no message row, no queued message and
no finished message references it."""

from __future__ import annotations

import sqlite3

from .meta import drop_meta


def release_blobs(c: sqlite3.Connection, digests) -> list[str]:
    """Drop the blobs nothing references any more: inline ones now, in this
    transaction; file ones are returned, to be unlinked after the commit."""
    files = []
    for digest in set(digests):
        if c.execute("SELECT 1 FROM messages WHERE blob=? UNION ALL "
                     "SELECT 1 FROM queue WHERE blob=? UNION ALL "
                     "SELECT 1 FROM queue_finished WHERE blob=? LIMIT 1",
                     (digest, digest, digest)).fetchone():
            continue
        drop_meta(c, digest)
        if c.execute("DELETE FROM blob_inline WHERE digest=?", (digest,)).rowcount == 0:
            files.append(digest)
    return files
