"""Group commit for deliveries on PostgreSQL: this node's concurrent deliveries share
one transaction, as the SQLite backend's writer thread batches its jobs.

Why: a delivery locks its mailboxes' rows until it commits (the UIDs come from them,
messages.py), and a commit waits for its WAL flush; so deliveries into one mailbox
would go one per flush. Batched, a flush commits many, and a batch's statements go
in one pipeline: a round trip or two for the lot.

Before its first delivery, a batch locks every mailbox any of them may use, in id
order: two nodes' batches, and IMAP writers (which lock in id order too), then never
wait for each other in a cycle. Should one delivery fail (a copy without any of its
mailboxes, a queue id used twice), the batch is undone and run again with a savepoint
per delivery, so that one alone is told its error and the others commit; a batch that
loses a deadlock runs again whole (Database.transaction).

Latency is not traded for it: a delivery starts at once when fewer than IN_FLIGHT
batches are running (alone, if nothing else waits); those arriving meanwhile are
grouped, up to BATCH_MAX, into the next.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Protocol

import psycopg

from .db import RETRY_ON, Cursor, Database

BATCH_MAX = 64
IN_FLIGHT = 4


class Delivering(Protocol):
    """A prepared delivery (messages.py): its writes, in the parts a batch runs."""
    accounts: list[int]
    mailboxes: list[str]

    async def run(self, cur: Cursor) -> None: ...
    async def write(self, cur: Cursor, copies: Cursor) -> None: ...
    async def check(self, copies: Cursor) -> None: ...


class GroupCommit:
    def __init__(self, db: Database):
        self.db = db
        self.pending: list[tuple[Delivering, asyncio.Future]] = []
        self.active = 0                         # drain tasks not yet returned
        self.tasks: set[asyncio.Task] = set()   # held, or the loop could drop them

    async def submit(self, job: Delivering) -> None:
        """Run the delivery in a committed transaction, with others submitted
        meanwhile; its own error if it failed."""
        await self.db.run(self._submit(job))

    async def _submit(self, job: Delivering) -> None:
        # On the pool's loop: pending and active are touched by this loop only.
        done = asyncio.get_running_loop().create_future()
        self.pending.append((job, done))
        if self.active < IN_FLIGHT:
            self.active += 1
            task = asyncio.create_task(self._drain())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        await done

    async def _drain(self) -> None:
        try:
            await self._run_batches()
        finally:
            # No await between the last look at pending and this: a submit that
            # finds active at IN_FLIGHT knows a drain will still see its job.
            self.active -= 1

    async def _run_batches(self) -> None:
        while self.pending:
            batch, self.pending = self.pending[:BATCH_MAX], self.pending[BATCH_MAX:]
            jobs = [job for job, _ in batch]
            outcomes: list[BaseException | None]
            try:
                if len(jobs) == 1:
                    await self.db.transaction(jobs[0].run)
                else:
                    await self.db.transaction(_together(jobs))
                outcomes = [None] * len(jobs)
            except (*RETRY_ON, psycopg.OperationalError) as e:
                outcomes = [e] * len(jobs)        # the database's: every one is told
            except Exception as e:
                if len(jobs) == 1:
                    outcomes = [e]
                else:                             # one of them: which?
                    try:
                        outcomes = await self.db.transaction(_one_by_one(jobs))
                    except Exception as again:
                        outcomes = [again] * len(jobs)
            for (_, done), outcome in zip(batch, outcomes, strict=True):
                if done.done():
                    continue                      # its caller went away
                if outcome is None:
                    done.set_result(None)
                else:
                    done.set_exception(outcome)


async def _lock_mailboxes(cur: Cursor, jobs: list[Delivering]) -> None:
    accounts = sorted({a for job in jobs for a in job.accounts})
    if accounts:
        await cur.execute("SELECT id FROM mailboxes WHERE account_id = ANY(%s) AND "
                          "name = ANY(%s) ORDER BY id FOR NO KEY UPDATE",
                          (accounts, sorted({n for job in jobs for n in job.mailboxes})))


def _together(jobs: list[Delivering]) -> Callable[[Cursor], Awaitable[None]]:
    """Every delivery's statements in one pipeline (no spooled blobs here: those go
    alone, messages.py); any failure fails the batch."""
    async def fn(cur: Cursor) -> None:
        await _lock_mailboxes(cur, jobs)
        async with AsyncExitStack() as stack:
            copies = [await stack.enter_async_context(cur.connection.cursor())
                      for _ in jobs]
            async with cur.connection.pipeline():
                for job, c in zip(jobs, copies, strict=True):
                    await job.write(cur, c)
            for job, c in zip(jobs, copies, strict=True):
                await job.check(c)
    return fn


def _one_by_one(jobs: list[Delivering]
                ) -> Callable[[Cursor], Awaitable[list[BaseException | None]]]:
    """Each delivery in a savepoint of its own: a failing one is undone alone."""
    async def fn(cur: Cursor) -> list[BaseException | None]:
        await _lock_mailboxes(cur, jobs)
        outcomes: list[BaseException | None] = []
        for job in jobs:
            try:
                async with cur.connection.transaction():          # a savepoint
                    await job.run(cur)
                outcomes.append(None)
            except (*RETRY_ON, psycopg.OperationalError):
                raise                                 # the batch's to retry or fail
            except Exception as e:                    # this delivery's own
                outcomes.append(e)
        return outcomes
    return fn
