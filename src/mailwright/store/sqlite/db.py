"""The SQLite connection and the one writer thread with group commit.

The writer takes every job waiting in its queue (up to a batch limit), runs each
inside a savepoint of one transaction and commits once: concurrent deliveries share
a single fsync (group commit), and one failing job does not undo the others. Blob
files are written before, in a small thread pool, where concurrent fsyncs are
merged by the filesystem journal. The event loop only ever waits on futures.

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
    def step(self, c: sqlite3.Connection) -> float | None:
        """Do one bounded piece of deferred work in a transaction of its own if it is
        due (called after each batch of jobs, their waiters already woken, and when
        the writer is idle). In how many seconds to look again if the writer stays
        idle (0: at once), None when nothing is left."""
        ...


class Job:
    __slots__ = ("fn", "blobs", "future", "loop", "digests", "inline")

    def __init__(self, fn, blobs, future, loop=None):
        self.fn = fn
        self.blobs = blobs
        self.future = future          # concurrent.futures.Future, or asyncio.Future
        self.loop = loop              # the asyncio loop owning `future`, if any
        self.digests: list[str] | None = None
        self.inline: list[tuple[str, bytes]] = []


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

    def submit(self, fn: Callable[..., Any] | None,
               blobs: tuple[Content, ...] = ()) -> concurrent.futures.Future:
        """Queue fn(conn), or fn(conn, digests) when blobs are given: the blobs are
        durable before fn runs. fn=None stops the writer."""
        fut: concurrent.futures.Future = concurrent.futures.Future()
        self.jobs.put(Job(fn, blobs, fut))
        return fut

    def submit_async(self, fn: Callable[..., Any], blobs: tuple[Content, ...] = ()
                     ) -> asyncio.Future:
        """As submit, for a coroutine running on an event loop."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self.jobs.put(Job(fn, blobs, fut, loop))
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
                wait = self._background()

    def _background(self) -> float | None:
        assert self.background is not None
        try:
            with self.lock:
                wait = self.background.step(self.conn)
        except Exception as e:   # e.g. busy past the timeout: tried again after a batch
            log.error("background store work failed: %s", e)
            return None
        return None if wait is None else max(wait, 0.0)

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
        """Every job in one transaction, each in a savepoint; (job, ok, value) each."""
        results = []
        c = self.conn
        try:
            c.execute("BEGIN IMMEDIATE")
            if events:
                c.executemany("INSERT INTO events (ts, type, session, message_id, address, "
                              "domain, tag, data, role) VALUES (?,?,?,?,?,?,?,?,?)", events)
            for job in batch:
                c.execute("SAVEPOINT job")
                try:
                    if job.inline:
                        c.executemany("INSERT OR IGNORE INTO blob_inline (digest, data) "
                                      "VALUES (?, ?)", job.inline)
                    value = job.fn(c) if job.digests is None else job.fn(c, job.digests)
                    results.append((job, True, value))
                    c.execute("RELEASE job")
                except Exception as e:
                    c.execute("ROLLBACK TO job")
                    c.execute("RELEASE job")
                    results.append((job, False, e))
            c.execute("COMMIT")
        except Exception as e:
            log.error("store commit failed: %s", e)
            if c.in_transaction:
                c.execute("ROLLBACK")
            results = [(job, False, e) for job in batch]
        return results

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


def noop(conn: sqlite3.Connection) -> None:
    return None


def is_file(blob: Content | Written) -> bool:
    return isinstance(blob, Written) or len(blob) > INLINE_BLOB_MAX
