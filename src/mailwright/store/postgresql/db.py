"""The PostgreSQL connection pool, on an event loop of its own.

psycopg 3's async pool is bound to the event loop that opened it. The store is opened
before a worker's loop runs, used from that loop, and also from short-lived loops (the
CLI, asyncio.run in tests) and from plain threads (close, record_event); so the pool
lives on one private loop in a daemon thread, and every query is a coroutine handed to
it (asyncio.run_coroutine_threadsafe) and awaited from the caller's loop. The hop costs
tens of microseconds; a round trip to the server costs more.

Group commit (never acknowledge what is not durable) is PostgreSQL's own: a COMMIT
returns once its WAL is flushed, and the WAL writer flushes the commits of concurrent
transactions together (see `commit_delay`), so concurrent deliveries share an fsync as
they do in the SQLite backend's writer thread.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import psycopg
from psycopg import errors
from psycopg_pool import AsyncConnectionPool

log = logging.getLogger("mailwright.store")

T = TypeVar("T")
Cursor = psycopg.AsyncCursor

# A transaction that lost a serialization or deadlock race is run again, this often.
RETRIES = 8
RETRY_ON = (errors.SerializationFailure, errors.DeadlockDetected)


class Database:
    def __init__(self, dsn: str, *, min_size: int = 1, max_size: int = 10,
                 timeout: float = 30.0):
        self.dsn = dsn
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever,
                                       name="mailwright-postgresql", daemon=True)
        self.thread.start()
        # Coroutines run on the pool's loop at close, before the pool closes (what holds
        # a dedicated connection closes it).
        self.closing: list[Callable[[], Awaitable[None]]] = []
        self.pool = AsyncConnectionPool(dsn, min_size=min_size, max_size=max_size,
                                        timeout=timeout, open=False,
                                        kwargs={"autocommit": True}, name="mailwright")
        try:
            self.call(self.pool.open(wait=True, timeout=timeout))
        except Exception:
            self._stop_loop()
            raise

    # --- crossing into the pool's loop -------------------------------------------

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run coro on the pool's loop from a thread without a running loop."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await coro, run on the pool's loop, from any other loop."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Call fn(*args) on the pool's loop, from any thread, without waiting."""
        self.loop.call_soon_threadsafe(fn, *args)

    # --- queries -------------------------------------------------------------------

    async def fetchall(self, sql: str, params: Any = ()) -> list[tuple]:
        return await self.run(self._fetch(sql, params, all_rows=True))

    async def fetchone(self, sql: str, params: Any = ()) -> tuple | None:
        return await self.run(self._fetch(sql, params, all_rows=False))

    async def execute(self, sql: str, params: Any = ()) -> int:
        """One statement in its own transaction; the number of rows it touched."""
        async def go(cur: Cursor) -> int:
            await cur.execute(sql, params)
            return cur.rowcount
        return await self.transaction(go)

    async def statement(self, sql: str, params: Any = ()) -> int:
        """One statement on its own, autocommitted (atomic as any statement): the
        number of rows it touched, in one round trip where execute takes three
        (BEGIN, the statement, COMMIT)."""
        return await self.run(self._statement(sql, params))

    async def transaction(self, fn: Callable[[Cursor], Awaitable[T]]) -> T:
        """fn(cursor) inside one transaction, committed (durably) before this returns;
        run again from the start if it lost a serialization or deadlock race."""
        return await self.run(self._transaction(fn))

    async def transaction_here(self, fn: Callable[[Cursor], Awaitable[T]]) -> T:
        """As transaction, for a coroutine already running on the pool's loop (a task
        started there with soon())."""
        return await self._transaction(fn)

    async def statement_here(self, sql: str, params: Any = ()) -> int:
        """As statement, for a coroutine already running on the pool's loop (a task
        started there with soon(), or one handed to call())."""
        return await self._statement(sql, params)

    async def _statement(self, sql: str, params: Any) -> int:
        async with self.pool.connection() as conn, conn.cursor() as cur:
            await cur.execute(sql, params)
            return cur.rowcount

    async def _fetch(self, sql: str, params: Any, all_rows: bool):
        async with self.pool.connection() as conn, conn.cursor() as cur:
            await cur.execute(sql, params)
            return await (cur.fetchall() if all_rows else cur.fetchone())

    async def _transaction(self, fn: Callable[[Cursor], Awaitable[T]]) -> T:
        for attempt in range(RETRIES):
            try:
                async with self.pool.connection() as conn:
                    async with conn.transaction(), conn.cursor() as cur:
                        return await fn(cur)
            except RETRY_ON as e:
                if attempt == RETRIES - 1:
                    raise
                log.debug("transaction retried after %s", type(e).__name__)
                await asyncio.sleep(random.uniform(0, 0.005 * 2 ** attempt))
        raise AssertionError("unreachable")

    async def dedicated(self) -> psycopg.AsyncConnection:
        """A connection of its own, outside the pool, autocommit: for what lives in a
        session (LISTEN, session-level advisory locks). Only on the pool's loop."""
        return await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)

    # --- the end ---------------------------------------------------------------------

    def close(self) -> None:
        if self.loop.is_closed():            # closed already
            return
        try:
            for closer in self.closing:
                self.call(closer())
            self.call(self.pool.close())
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        if not self.thread.is_alive():
            self.loop.close()
