"""Event rows on their way to PostgreSQL: queued by record_event, which may be called
from any thread and must never wait, and written by one task on the pool's loop, every
row queued meanwhile in one INSERT (the events table's trigger fans each row out to the
webhook outbox in the same statement). While a batch is being written the next one
gathers, so under load a batch costs one round trip and one commit for many events, as
the SQLite writer's next batch does.

A row PostgreSQL refuses (a NUL in a text column, a NaN in its data) is logged and
dropped, the rest of its batch written row by row; a batch the database could not take
at all (it is down) is logged and dropped, as the SQLite writer drops the events of a
failed commit. Either way it counts as settled, so no reader waits for it forever.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading

import psycopg

from ...events.log import EventRow
from .db import Database

log = logging.getLogger("mailwright.store")

# Rows per INSERT at most; a larger backlog goes in several, one after the other.
MAX_BATCH = 5000

# unnest: one statement for the batch, ids in the order the rows were queued. The
# arrays go in binary (%b): psycopg writes text arrays element by element with quoting
# in Python, ~50x slower than the binary form for a batch of JSON strings (measured:
# 5000 rows, 217 ms against 2 ms), and the server need not parse the quoting either.
INSERT = ("INSERT INTO events (ts, type, session, message_id, address, domain, tag, role, "
          "data) SELECT ts, ty, se, mi, ad, dm, tg, ro, da::json FROM unnest("
          "%b::float8[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], "
          "%b::text[], %b::text[], %b::text[]) AS u(ts, ty, se, mi, ad, dm, tg, ro, da)")


def _values(row: EventRow) -> tuple:
    return (row.ts, row.type, row.session, row.message_id, row.address, row.domain, row.tag,
            row.role, json.dumps(row.data, default=str))


class EventWriter:
    def __init__(self, db: Database):
        self.db = db
        self._lock = threading.Lock()
        self._rows: list[tuple] = []
        self._queued = 0            # rows ever queued (under the lock)
        self._settled = 0           # rows written or dropped (on the pool's loop only)
        self._running = False       # a writing task is on its way or running
        self._progress = asyncio.Event()     # set and replaced after each batch

    def add(self, row: EventRow) -> None:
        values = _values(row)       # the caller's thread does the encoding
        with self._lock:
            self._rows.append(values)
            self._queued += 1
            start = not self._running
            self._running = True
        if start:
            try:
                self.db.soon(self._start)
            except RuntimeError:       # the store is closed: nothing will write it
                log.warning("event %s recorded after the store closed: not stored", row.type)

    async def written(self) -> None:
        """Wait until the rows queued before this call are settled (from any loop)."""
        target = self._queued
        if self._settled < target:
            await self.db.run(self._until(target))

    def flush(self) -> None:
        """written(), from a thread without a running loop."""
        target = self._queued
        if self._settled < target:
            self.db.call(self._until(target))

    # --- on the pool's loop ----------------------------------------------------------

    def _start(self) -> None:
        self.db.loop.create_task(self._run())

    async def _until(self, target: int) -> None:
        while self._settled < target:
            await self._progress.wait()

    async def _run(self) -> None:
        while True:
            with self._lock:
                batch, self._rows = self._rows[:MAX_BATCH], self._rows[MAX_BATCH:]
                if not batch:
                    self._running = False
                    return
            try:
                await self._write(batch)
            except Exception:  # logged; the rows are dropped, the writer goes on
                log.exception("%d event rows not written", len(batch))
            self._settled += len(batch)
            progress, self._progress = self._progress, asyncio.Event()
            progress.set()

    async def _write(self, batch: list[tuple]) -> None:
        # One statement, autocommitted: one round trip, atomic with the fan-out rows
        # its trigger adds.
        try:
            await self.db.statement_here(
                INSERT, [list(column) for column in zip(*batch, strict=True)])
        except psycopg.DataError:
            # One bad row spoils the statement: the others go in one by one.
            for values in batch:
                try:
                    await self.db.statement_here(INSERT, [[x] for x in values])
                except psycopg.DataError as e:
                    log.error("event row not written (%s): %s %r", e, values[1], values)
