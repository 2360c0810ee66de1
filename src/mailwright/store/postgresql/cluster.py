"""What the nodes coordinate through PostgreSQL (store/cluster.py's Cluster).

- Changed mailboxes: a trigger notifies (notices.py), one LISTEN per process.
- Leadership and exclusive locks: session-level advisory locks on a connection of
  the process's own (holds.py); leadership is retried every LEAD_RETRY seconds by
  every process that wants it.
- Failed-login counters: the auth_failures table, written by failures only (a
  success clears a key the caller has counted). The statement that reaches the
  limit also announces the lockout (pg_notify), which every node's listener
  applies to its counters in memory: checking a login reads no table. The window is
  counted from the first failure in it (a fixed window, not a sliding one).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import cached_property

from .db import Cursor, Database
from .holds import Holds
from .notices import LOCKOUT, MAILBOX, Notices

log = logging.getLogger("mailwright.store")

LEAD_RETRY = 2.0          # seconds between a follower's tries to become the leader
PRUNE_ODDS = 0.01         # share of failures that also sweep stale counters


class PostgresCluster:
    db: Database

    @cached_property
    def _notices(self) -> Notices:
        return Notices(self.db)

    @cached_property
    def _holds(self) -> Holds:
        return Holds(self.db)

    async def watch_mailboxes(self, changed: Callable[[int | None], None]) -> None:
        await self._notices.subscribe(
            MAILBOX, lambda payload: changed(None if payload is None else int(payload)))

    async def lead(self, name: str, lost: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()

        def tell() -> None:
            if not loop.is_closed():
                loop.call_soon_threadsafe(lost)
        while not await self.db.run(self._holds.take(f"lead:{name}", tell)):
            await asyncio.sleep(LEAD_RETRY)

    async def try_exclusive(self, name: str) -> bool:
        return await self.db.run(self._holds.take(f"exclusive:{name}"))

    def release_exclusive(self, name: str) -> None:
        self.db.soon(self._soon, self._holds.give_back, f"exclusive:{name}")

    def note_failure(self, key: str, window: float, limit: int, lockout: float) -> None:
        async def count(cur: Cursor) -> None:
            # The database's clock: the nodes' may differ a little.
            await cur.execute(
                "WITH t AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS now), "
                "swept AS (DELETE FROM auth_failures WHERE random() < %(odds)s AND "
                "since < (SELECT now FROM t) - %(window)s AND "
                "locked_until < (SELECT now FROM t)) "
                "INSERT INTO auth_failures AS f (key, failures, since) "
                "SELECT %(key)s, 1, now FROM t ON CONFLICT (key) DO UPDATE SET "
                "failures = CASE WHEN f.since > EXCLUDED.since - %(window)s "
                "THEN f.failures + 1 ELSE 1 END, "
                "since = CASE WHEN f.since > EXCLUDED.since - %(window)s "
                "THEN f.since ELSE EXCLUDED.since END RETURNING failures",
                {"key": key, "window": window, "odds": PRUNE_ODDS})
            (failures,) = await cur.fetchone()
            if failures >= limit:
                await cur.execute(
                    "UPDATE auth_failures SET failures=0, locked_until="
                    "extract(epoch FROM clock_timestamp()) + %(lockout)s WHERE key=%(key)s "
                    "RETURNING pg_notify(%(channel)s, %(payload)s)",
                    {"key": key, "lockout": lockout, "channel": LOCKOUT,
                     "payload": f"{lockout} {key}"})
        self.db.soon(self._soon, self.db.transaction_here, count)

    def clear_failures(self, key: str) -> None:
        async def clear(cur: Cursor) -> None:
            await cur.execute("DELETE FROM auth_failures WHERE key=%s AND failures>0",
                              (key,))
        self.db.soon(self._soon, self.db.transaction_here, clear)

    async def watch_lockouts(self, locked: Callable[[str, float], None]) -> None:
        def heard(payload: str | None) -> None:
            if payload is not None:
                seconds, key = payload.split(" ", 1)
                locked(key, float(seconds))
        await self._notices.subscribe(LOCKOUT, heard)

    def _soon(self, fn, *args) -> None:
        """On the pool's loop: run fn(*args) in the background, its failure logged
        (what is sent without waiting has no caller to raise to)."""
        task = asyncio.get_running_loop().create_task(fn(*args))
        task.add_done_callback(_log_failure)


def _log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("cluster bookkeeping failed: %s", task.exception())
