"""Session-level advisory locks, held on one connection of this process's own.

pg_try_advisory_lock takes a lock that lasts as long as the session (or until
pg_advisory_unlock): so a process that dies, or whose connection breaks, holds
nothing any more and another node may take what it held. That is the point for
leadership and for exclusive locks (a POP3 maildrop), and the reason they are not
taken on pooled connections, which other work borrows.

A session's advisory locks are re-entrant (the same session taking a key twice
succeeds twice): names held in this process are kept here, so a second taker in the
same process is refused like one on another node.

The connection is checked every HEALTH_INTERVAL seconds while anything is held; when
it is found broken every holder is told (their hold is gone with it), and the next
take opens a new connection.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable

import psycopg

from .db import Database

log = logging.getLogger("mailwright.store")

HEALTH_INTERVAL = 2.0


def lock_key(name: str) -> int:
    """A name as a bigint advisory-lock key (the first 8 bytes of its SHA-256)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class Holds:
    """Everything here runs on the pool's loop."""

    def __init__(self, db: Database):
        self.db = db
        self.conn: psycopg.AsyncConnection | None = None
        self.lock = asyncio.Lock()
        self.held: dict[str, Callable[[], None] | None] = {}   # name: told when lost
        self.health: asyncio.Task | None = None
        db.closing.append(self._close)

    async def take(self, name: str, lost: Callable[[], None] | None = None) -> bool:
        """Hold `name` now, or False if anyone holds it; lost() if the hold goes with
        the connection."""
        async with self.lock:
            if name in self.held:
                return False
            for attempt in (1, 2):      # a connection found broken now: a new one, once
                try:
                    if self.conn is None or self.conn.closed:
                        self.conn = await self.db.dedicated()
                    row = await (await self.conn.execute("SELECT pg_try_advisory_lock(%s)",
                                                         (lock_key(name),))).fetchone()
                    break
                except psycopg.Error as e:
                    self._broken(e)
                    if attempt == 2:
                        return False
            if not row[0]:
                return False
            self.held[name] = lost
            if self.health is None or self.health.done():
                self.health = asyncio.get_running_loop().create_task(self._watch())
            return True

    async def give_back(self, name: str) -> None:
        async with self.lock:
            if self.held.pop(name, 0) == 0 or self.conn is None:
                return
            try:
                await self.conn.execute("SELECT pg_advisory_unlock(%s)", (lock_key(name),))
            except psycopg.Error as e:
                self._broken(e)

    def _broken(self, error: Exception) -> None:
        """The connection failed: every hold went with it."""
        if self.held:
            log.warning("lost the database session holding %s: %s",
                        ", ".join(sorted(self.held)), error)
        gone, self.held = self.held, {}
        if self.conn is not None:
            asyncio.get_running_loop().create_task(self.conn.close())
        self.conn = None
        for lost in gone.values():
            if lost is not None:
                lost()

    async def _watch(self) -> None:
        while self.held:
            await asyncio.sleep(HEALTH_INTERVAL)
            async with self.lock:
                if self.conn is None or not self.held:
                    continue
                try:
                    await self.conn.execute("SELECT 1")
                except psycopg.Error as e:
                    self._broken(e)

    async def _close(self) -> None:
        if self.health is not None:
            self.health.cancel()
        if self.conn is not None:
            await self.conn.close()
