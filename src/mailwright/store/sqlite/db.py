"""The SQLite connection and the one writer thread with group commit.

The writer takes every job waiting in its queue (up to a batch limit), runs each
inside a savepoint of one transaction and commits once: concurrent deliveries share
a single fsync (group commit), and one failing job does not undo the others. Blob
files are written before, in a small thread pool, where concurrent fsyncs are
merged by the filesystem journal. The event loop only ever waits on futures.

Jobs of one kind may be done together (`together`): the batch's deliveries are one
INSERT per table, not a dozen statements each. Each statement lets go of the GIL while
SQLite runs it and must take it back from the event loop. Under SMTP load the writer
waited about as long for the GIL (~100 µs at a time) as it ran (perf sched), and its
turn at the write lock grew with it; the store alone, 10 deliveries at a time, went
from 3,071 to 3,830 deliveries/s (290 to 233 µs of CPU each), and with a busy Python
thread beside it from 18 to 94. If doing them together fails, each is done alone, in
a savepoint of its own, so one bad job still fails alone.

Work nobody waits for (the full-text index, textindex.py) is the writer's background:
a bounded step whenever its queue is empty, in a transaction of its own.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import fcntl
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from ..blobs import BlobStore, Content, Written, digest_of, whole

log = logging.getLogger("mailwright.store")


# Messages up to this size are stored inside the database (in the batch's one
# transaction); larger ones as files. Creating a file per small message costs
# more system time than the message itself on many filesystems.
INLINE_BLOB_MAX = 64 * 1024
MAX_BATCH = 512
# Pages a connection keeps in memory, MiB at most (`[store] cache_mib`). SQLite's own
# default, 2 MiB, holds ~500 pages: a header SEARCH of a 10,000-message mailbox reads
# one wide message_meta row per message and went to the OS for most of them (UID
# SEARCH UNSEEN SUBJECT 11.3 -> 7.8 ms with 128 MiB; bench/imap.py's mixed clients
# ~690 -> ~950-1,000 op/s with 64). Memory is taken as pages are read, per connection.
CACHE_MIB = 64


def connect(path: Path, cache_mib: int = CACHE_MIB) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute(f"PRAGMA cache_size={-int(cache_mib) * 1024}")    # negative: KiB
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is durable once it returns (never acknowledge what is not fsynced).
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


# Host parameters per statement (SQLite's SQLITE_MAX_VARIABLE_NUMBER was 999 before 3.32).
MAX_VARIABLES = 500


def insert_many(c: sqlite3.Connection, head: str, rows: list[tuple]) -> None:
    """`head` ("INSERT INTO t (a, b)") with every row in as few statements as the
    host parameter limit allows: one statement, not one per row (see Job.together)."""
    if not rows:
        return
    width = len(rows[0])
    per = max(1, MAX_VARIABLES // width)
    marks = "(" + ",".join("?" * width) + ")"
    for i in range(0, len(rows), per):
        chunk = rows[i:i + per]
        c.execute(f"{head} VALUES {','.join([marks] * len(chunk))}",
                  [value for row in chunk for value in row])


def select_in(c: sqlite3.Connection, query: str, values: list) -> list[tuple]:
    """The rows of `query`, whose "{}" is the place of an IN list, for every value,
    in as few statements as the host parameter limit allows."""
    rows: list[tuple] = []
    for i in range(0, len(values), MAX_VARIABLES):
        chunk = values[i:i + MAX_VARIABLES]
        rows += c.execute(query.format(",".join("?" * len(chunk))), chunk)
    return rows


@contextlib.contextmanager
def deferrable(c: sqlite3.Connection) -> Iterator[None]:
    """A transaction whose commit is not synced by itself (synchronous=NORMAL): work
    that a crash may undo, because it is done again (the pending text index). The
    WAL keeps commits in order, so the next synced commit makes it durable too."""
    c.execute("PRAGMA synchronous=NORMAL")
    try:
        c.execute("BEGIN IMMEDIATE")
        try:
            yield
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
    finally:
        c.execute("PRAGMA synchronous=FULL")


class WriteLock:
    """Turns at SQLite's one write lock for the writers of several processes (`workers`,
    the CLI): an exclusive flock on a file beside the database, held around each write
    transaction. SQLite alone makes a writer that finds the database locked poll with
    sleeps of 1, 2, 5, 10 ... 100 ms, so under load one process sleeps through many of
    the other's commits and its sessions idle (bench/smtp_accept.py --workers 2: 40% of
    the CPUs idle, one worker doing twice the other's work). A process waiting on the
    flock is woken by the kernel as soon as it is released. Connections that write
    without it (none in the server) still fall back on SQLite's busy timeout."""

    def __init__(self, database: Path):
        self.fd = os.open(f"{database}-writelock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                          0o600)

    def __enter__(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self.fd)


class Background(Protocol):
    def step(self, c: sqlite3.Connection, lock: contextlib.AbstractContextManager
             ) -> float | None:
        """Do one bounded piece of deferred work in a transaction of its own if it is
        due (called after each batch of jobs, their waiters already woken, and when
        the writer is idle), holding `lock` (WriteLock) around that transaction only:
        whether work is due is read without it, so the other processes' writers are
        not held up by a look that finds nothing to do. In how many seconds to look
        again if the writer stays idle (0: at once), None when nothing is left."""
        ...


# Does the work of several jobs of one kind at once: (conn, [(digests, payload), ...])
# -> each job's value, in order.
Together = Callable[[sqlite3.Connection, list[tuple[Any, Any]]], list[Any]]


class Job:
    __slots__ = ("fn", "blobs", "future", "loop", "digests", "inline", "together",
                 "payload")

    def __init__(self, fn, blobs, future, loop=None, together=None, payload=None):
        self.fn = fn
        self.blobs = blobs
        self.future = future          # concurrent.futures.Future, or asyncio.Future
        self.loop = loop              # the asyncio loop owning `future`, if any
        self.digests: list[str] | None = None
        self.inline: list[tuple[str, bytes]] = []
        # Jobs of a batch with the same `together` are done by one call of it, with
        # their payloads; fn does the same work for one job alone.
        self.together: Together | None = together
        self.payload = payload


def settle(items: list) -> None:
    for future, ok, value in items:
        if future.done():             # an asyncio waiter may have been cancelled
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class Writer(threading.Thread):
    """The one thread that writes: blob files first (one sync for the batch), then
    every job's SQL in one transaction (one commit for the batch), then every
    waiter woken: one call into each event loop per batch, not one per job."""

    def __init__(self, path: Path, blobs: BlobStore, background: Background | None = None,
                 cache_mib: int = CACHE_MIB):
        super().__init__(name="mailwright-writer", daemon=True)
        self.conn = connect(path, cache_mib)
        self.lock = WriteLock(path)
        self.blobs = blobs
        self.background = background
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.events: collections.deque = collections.deque()
        self._look_at = 0.0           # time.monotonic() of the next background step

    def submit(self, fn: Callable[..., Any] | None,
               blobs: tuple[Content, ...] = ()) -> concurrent.futures.Future:
        """Queue fn(conn), or fn(conn, digests) when blobs are given: the blobs are
        durable before fn runs. fn=None stops the writer."""
        fut: concurrent.futures.Future = concurrent.futures.Future()
        self.jobs.put(Job(fn, blobs, fut))
        return fut

    def submit_async(self, fn: Callable[..., Any], blobs: tuple[Content, ...] = (),
                     together: Together | None = None, payload: Any = None
                     ) -> asyncio.Future:
        """As submit, for a coroutine running on an event loop. With `together`, the
        job may be done with others of its kind in the batch: together(conn,
        [(digests, payload), ...]); fn(conn, digests) must do the same alone."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self.jobs.put(Job(fn, blobs, fut, loop, together, payload))
        return fut

    def add_event(self, row: tuple) -> None:
        """Events need no waiter: they are written with the next batch."""
        self.events.append(row)
        if len(self.events) == 1:
            self.jobs.put(Job(noop, (), concurrent.futures.Future()))

    def run(self) -> None:
        # Background work may be left from before a restart (or a kill): look first.
        wait = 0.0 if self.background is not None else None
        while True:
            try:
                first = self.jobs.get() if wait is None else self.jobs.get(timeout=wait)
            except queue.Empty:
                wait = self._background()
                continue
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self.jobs.get_nowait())
                except queue.Empty:
                    break
            stop = [job for job in batch if job.fn is None]
            jobs = [job for job in batch if job.fn is not None]
            self._run_batch(jobs)
            # Drop the jobs before waiting for more: their blobs may hold spool files.
            del batch, jobs
            if stop:
                self.conn.close()
                self.lock.close()
                settle([(job.future, True, None) for job in stop])
                return
            if self.background is not None:
                # Not before the step said: deliveries only put that time off (the
                # newest pending text, textindex.py), so a look sooner finds the same.
                later = self._look_at - time.monotonic()
                wait = later if later > 0 else self._background()

    def _background(self) -> float | None:
        assert self.background is not None
        try:
            wait = self.background.step(self.conn, self.lock)
        except Exception as e:   # e.g. busy past the timeout: tried again after a batch
            log.error("background store work failed: %s", e)
            wait = None
        wait = None if wait is None else max(wait, 0.0)
        # None (nothing left): look again after the next batch, which may add some.
        self._look_at = 0.0 if wait is None else time.monotonic() + wait
        return wait

    def _write_blobs(self, batch: list[Job]) -> list[Job]:
        """Write the batch's large blobs as files with one sync; small ones go into
        the transaction itself. Returns the jobs that may go on."""
        large = [b for job in batch for b in job.blobs if is_file(b)]
        try:
            files = iter(self.blobs.write_batch(large) if large else [])
        except OSError as e:
            log.error("blob write failed: %s", e)
            self._wake([(job, False, e) for job in batch if job.blobs])
            return [job for job in batch if not job.blobs]
        for job in batch:
            if not job.blobs:
                continue
            job.digests = []
            for b in job.blobs:
                if is_file(b):
                    job.digests.append(next(files))
                else:
                    data = whole(b)
                    job.digests.append(digest_of(data))
                    job.inline.append((job.digests[-1], data))
            job.blobs = ()
        return batch

    def _run_batch(self, batch: list[Job]) -> None:
        batch = self._write_blobs(batch)
        events = []
        while self.events:
            events.append(self.events.popleft())
        with self.lock:
            results = self._transaction(batch, events)
        self._wake(results)

    def _transaction(self, batch: list[Job], events: list[tuple]) -> list:
        """Every job in one transaction: jobs of one kind together, the others each
        in a savepoint; (job, ok, value) each."""
        results: list = []
        c = self.conn
        kinds: dict[Together, list[Job]] = {}
        alone = []
        for job in batch:
            if job.together is not None:
                kinds.setdefault(job.together, []).append(job)
            else:
                alone.append(job)
        try:
            c.execute("BEGIN IMMEDIATE")
            insert_many(c, "INSERT INTO events (ts, type, session, message_id, address, "
                           "domain, tag, data, role)", events)
            for together, jobs in kinds.items():
                if len(jobs) == 1 or not self._together(together, jobs, results):
                    alone += jobs
            for job in alone:
                self._alone(job, results)
            c.execute("COMMIT")
        except Exception as e:
            log.error("store commit failed: %s", e)
            if c.in_transaction:
                c.execute("ROLLBACK")
            results = [(job, False, e) for job in batch]
        return results

    def _together(self, together: Together, jobs: list[Job], results: list) -> bool:
        """Jobs of one kind by one call, in a savepoint; False (undone) if it failed."""
        c = self.conn
        c.execute("SAVEPOINT together")
        try:
            insert_many(c, _INLINE, [row for job in jobs for row in job.inline])
            values = together(c, [(job.digests, job.payload) for job in jobs])
        except Exception:
            c.execute("ROLLBACK TO together")
            c.execute("RELEASE together")
            return False
        c.execute("RELEASE together")
        results += [(job, True, value) for job, value in zip(jobs, values, strict=True)]
        return True

    def _alone(self, job: Job, results: list) -> None:
        c = self.conn
        c.execute("SAVEPOINT job")
        try:
            insert_many(c, _INLINE, job.inline)
            value = job.fn(c) if job.digests is None else job.fn(c, job.digests)
            results.append((job, True, value))
            c.execute("RELEASE job")
        except Exception as e:
            c.execute("ROLLBACK TO job")
            c.execute("RELEASE job")
            results.append((job, False, e))

    @staticmethod
    def _wake(results: list) -> None:
        by_loop: dict[Any, list] = {}
        for job, ok, value in results:
            by_loop.setdefault(job.loop, []).append((job.future, ok, value))
        for loop, items in by_loop.items():
            if loop is None:
                settle(items)
            else:
                try:
                    loop.call_soon_threadsafe(settle, items)
                except RuntimeError:      # the loop is closed: nobody is waiting
                    pass


# A batch's small blobs, stored with its jobs (a blob already there is kept).
_INLINE = "INSERT OR IGNORE INTO blob_inline (digest, data)"


def noop(conn: sqlite3.Connection) -> None:
    return None


def is_file(blob: Content | Written) -> bool:
    return isinstance(blob, Written) or len(blob) > INLINE_BLOB_MAX
