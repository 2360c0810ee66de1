"""Blobs are shared (every copy of a message, the queue, finished messages kept for a
while): a `blobs` row, with its parse (message_meta, message_text), goes in the
transaction that removes its last reference (messages, queue, queue_finished).

Adding a reference and releasing the last one race across nodes: a releaser that
checked "nothing refers to it" before an adder's reference committed would delete a
blob the adder then points at. So both lock the blob row first, in digest order:
whoever adds a reference to a stored blob holds it (hold_blobs, or the insert in
store_blob) until its commit; release_blobs takes the rows FOR UPDATE and only then,
in a new statement whose snapshot sees every committed reference, deletes those
still unreferenced. An adder that finds the row gone (released meanwhile) stores the
octets again.
"""

from __future__ import annotations

from collections.abc import Iterable

from .db import Cursor

_UNREFERENCED = ("NOT EXISTS (SELECT 1 FROM messages m WHERE m.blob=b.digest) "
                 "AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.blob=b.digest) "
                 "AND NOT EXISTS (SELECT 1 FROM queue_finished f WHERE f.blob=b.digest)")


async def hold_blobs(cur: Cursor, digests: Iterable[str]) -> set[str]:
    """Lock stored blobs against release until this transaction ends (before adding a
    reference to them: a copy, a queued message); the digests that are stored."""
    wanted = sorted(set(digests))
    if not wanted:
        return set()
    await cur.execute("SELECT digest FROM blobs WHERE digest = ANY(%s) ORDER BY digest "
                      "FOR KEY SHARE", (wanted,))
    return {r[0] for r in await cur.fetchall()}


async def release_blobs(cur: Cursor, digests: Iterable[str]) -> list[str]:
    """Delete the blobs (and their parse) that nothing references any more, in the
    caller's transaction, after it removed its references; the digests deleted."""
    wanted = sorted(set(digests))
    if not wanted:
        return []
    # Statement 1 waits for adders holding these rows; statement 2, with a snapshot
    # taken after, sees their references if they committed.
    await cur.execute("SELECT digest FROM blobs WHERE digest = ANY(%s) ORDER BY digest "
                      "FOR UPDATE", (wanted,))
    locked = [r[0] for r in await cur.fetchall()]
    if not locked:
        return []
    # message_text goes with message_meta (ON DELETE CASCADE).
    await cur.execute(
        f"WITH gone AS (DELETE FROM blobs b WHERE b.digest = ANY(%s) AND {_UNREFERENCED} "
        f"RETURNING b.digest), "
        f"meta AS (DELETE FROM message_meta x USING gone WHERE x.blob=gone.digest) "
        f"SELECT digest FROM gone", (locked,))
    return [r[0] for r in await cur.fetchall()]
