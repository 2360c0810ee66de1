"""What several nodes on one database coordinate through the store (optional).

A backend shared by several nodes (PostgreSQL) offers this beside the data: news of
changed mailboxes from any node, leadership (one holder in the whole cluster),
exclusive locks on names, and counters of failed logins shared by every node. A
single-node backend (SQLite) does not: app.py then keeps the one-machine means
(polling, the primary process, file locks, counters in memory). `isinstance(store,
Cluster)` tells which.

Callbacks run on the event loop that registered them. Everything held through a
connection (leadership, exclusive locks) goes with it: a node cut off from the
database loses them, and another node may take them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable


@runtime_checkable
class Cluster(Protocol):
    async def watch_mailboxes(self, changed: Callable[[int | None], None]) -> None:
        """From now on, changed(mailbox_id) whenever a mailbox's UIDNEXT or
        HIGHESTMODSEQ (store/mailboxes.py mailbox_versions) changes on any node;
        changed(None) when news may have been missed (a reconnection): look at all."""
        ...

    async def lead(self, name: str, lost: Callable[[], None]) -> None:
        """Return once this process is the cluster's one holder of `name` (waiting as
        long as another holds it); lost() if it stops being the holder (its
        connection to the database broke)."""
        ...

    async def try_exclusive(self, name: str) -> bool:
        """Take the cluster-wide exclusive lock on `name` now, or False if anyone
        (this process included) holds it."""
        ...

    def release_exclusive(self, name: str) -> None:
        """Give the lock back (without waiting for the database)."""
        ...

    def note_failure(self, key: str, window: float, limit: int, lockout: float) -> None:
        """Count a failure for `key` in the cluster's shared counter (without waiting):
        the `limit`-th within `window` seconds locks the key for `lockout` seconds on
        every node (watch_lockouts)."""
        ...

    def clear_failures(self, key: str) -> None:
        """Forget `key`'s counted failures (a success), without waiting."""
        ...

    async def watch_lockouts(self, locked: Callable[[str, float], None]) -> None:
        """From now on, locked(key, seconds) whenever any node locks a key."""
        ...
