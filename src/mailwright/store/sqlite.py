"""The single-node store: blob files + SQLite (WAL) metadata.

Writes go through one writer thread. It takes every job waiting in its queue
(up to a batch limit), runs each inside a savepoint of one transaction and
commits once: concurrent deliveries share a single fsync (group commit), and
one failing job does not undo the others. Blob files are written before, in a
small thread pool, where concurrent fsyncs are merged by the filesystem
journal. The event loop only ever waits on futures.

Reads (recipient lookups, credentials) run on the caller's own connection:
they are indexed point queries on a page-cached database, a few
microseconds each, cheaper than a hop to another thread.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Collection
from importlib import resources
from pathlib import Path
from typing import Any

from ..address import Address, AddressError, canonical_domain, display_domain, parse_mailbox
from ..auth.passwords import Credentials, ScramKeys, hash_password, scram_keys
from .base import StoreError
from .blobs import BlobStore, Content, Spool, Spooled, Written, digest_of, whole
from .directory import DEFAULT_MAILBOXES, AccountInfo, AliasInfo, DKIMKeyInfo
from .mailboxes import Maildrop, MaildropMessage, RenderViews
from .messages import Delivery, LocalCopy
from .queue import QueuedMessage, QueuedRecipient, RecipientUpdate
from .sqlite_mailboxes import (
    Indexed,
    NewMessage,
    SQLiteMailboxes,
    add_messages,
    drop_meta,
    ensure_meta,
)
from .sqlite_mailboxes import _expunge_rows as expunge_rows

log = logging.getLogger("mailwright.store")

SCHEMA_VERSION = "1"
# Messages up to this size are stored inside the database (in the batch's one
# transaction); larger ones as files. Creating a file per small message costs
# more system time than the message itself on many filesystems.
INLINE_BLOB_MAX = 64 * 1024
MAX_BATCH = 512
# Columns added after a table was first released: added in place on open.
ADDED_COLUMNS = (
    ("domains", "pop3_expire_days", "INTEGER"),
    ("messages", "pop3_retrieved", "REAL"),
    ("queue_recipients", "delay_warned", "INTEGER NOT NULL DEFAULT 0"),
    ("queue_recipients", "lease", "REAL NOT NULL DEFAULT 0"),
    ("mailboxes", "recent_uid", "INTEGER NOT NULL DEFAULT 1"),
    ("messages", "meta_id", "INTEGER"),
    ("message_meta", "sent_day", "INTEGER"),
    ("message_meta", "display_from", "TEXT NOT NULL DEFAULT ''"),
    ("message_meta", "display_to", "TEXT NOT NULL DEFAULT ''"),
    ("message_meta", "version", "INTEGER NOT NULL DEFAULT 0"),   # 0: parse again
)


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is durable once it returns (never acknowledge what is not fsynced).
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class _Job:
    __slots__ = ("fn", "blobs", "future", "loop", "digests", "inline")

    def __init__(self, fn, blobs, future, loop=None):
        self.fn = fn
        self.blobs = blobs
        self.future = future          # concurrent.futures.Future, or asyncio.Future
        self.loop = loop              # the asyncio loop owning `future`, if any
        self.digests: list[str] | None = None
        self.inline: list[tuple[str, bytes]] = []


def _settle(items: list) -> None:
    for future, ok, value in items:
        if future.done():             # an asyncio waiter may have been cancelled
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class _Writer(threading.Thread):
    """The one thread that writes: blob files first (one sync for the batch), then
    every job's SQL in one transaction (one commit for the batch), then every
    waiter woken: one call into each event loop per batch, not one per job."""

    def __init__(self, path: Path, blobs: BlobStore):
        super().__init__(name="mailwright-writer", daemon=True)
        self.conn = _connect(path)
        self.blobs = blobs
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.events: collections.deque = collections.deque()

    def submit(self, fn: Callable[..., Any] | None,
               blobs: tuple[Content, ...] = ()) -> concurrent.futures.Future:
        """Queue fn(conn), or fn(conn, digests) when blobs are given: the blobs are
        durable before fn runs. fn=None stops the writer."""
        fut: concurrent.futures.Future = concurrent.futures.Future()
        self.jobs.put(_Job(fn, blobs, fut))
        return fut

    def submit_async(self, fn: Callable[..., Any], blobs: tuple[Content, ...] = ()
                     ) -> asyncio.Future:
        """As submit, for a coroutine running on an event loop."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self.jobs.put(_Job(fn, blobs, fut, loop))
        return fut

    def add_event(self, row: tuple) -> None:
        """Events need no waiter: they are written with the next batch."""
        self.events.append(row)
        if len(self.events) == 1:
            self.jobs.put(_Job(_noop, (), concurrent.futures.Future()))

    def run(self) -> None:
        while True:
            batch = [self.jobs.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self.jobs.get_nowait())
                except queue.Empty:
                    break
            stop = [job for job in batch if job.fn is None]
            self._run_batch([job for job in batch if job.fn is not None])
            # Drop the jobs before waiting for more: their blobs may hold spool files.
            del batch
            if stop:
                self.conn.close()
                _settle([(job.future, True, None) for job in stop])
                return

    def _write_blobs(self, batch: list[_Job]) -> list[_Job]:
        """Write the batch's large blobs as files with one sync; small ones go into
        the transaction itself. Returns the jobs that may go on."""
        large = [b for job in batch for b in job.blobs if _is_file(b)]
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
                if _is_file(b):
                    job.digests.append(next(files))
                else:
                    data = whole(b)
                    job.digests.append(digest_of(data))
                    job.inline.append((job.digests[-1], data))
            job.blobs = ()
        return batch

    def _run_batch(self, batch: list[_Job]) -> None:
        batch = self._write_blobs(batch)
        events = []
        while self.events:
            events.append(self.events.popleft())
        results = []
        c = self.conn
        try:
            c.execute("BEGIN IMMEDIATE")
            if events:
                c.executemany("INSERT INTO events (ts, type, session, message_id, data) "
                              "VALUES (?,?,?,?,?)", events)
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
        self._wake(results)

    @staticmethod
    def _wake(results: list) -> None:
        by_loop: dict[Any, list] = {}
        for job, ok, value in results:
            by_loop.setdefault(job.loop, []).append((job.future, ok, value))
        for loop, items in by_loop.items():
            if loop is None:
                _settle(items)
            else:
                try:
                    loop.call_soon_threadsafe(_settle, items)
                except RuntimeError:      # the loop is closed: nobody is waiting
                    pass


def _noop(conn: sqlite3.Connection) -> None:
    return None


class SQLiteStore(SQLiteMailboxes):
    def __init__(self, data_dir: Path, render_views: RenderViews):
        self.data_dir = data_dir
        self.render_views = render_views
        data_dir.mkdir(parents=True, exist_ok=True)
        self.db_path = data_dir / "mail.db"
        self.blobs = BlobStore(data_dir / "blobs")
        self.blobs.clean_tmp()
        self.conn = _connect(self.db_path)
        self._init_schema()
        self._init_mailboxes(self.conn)
        self._writer = _Writer(self.db_path, self.blobs)
        self._writer.start()

    def _init_schema(self) -> None:
        sql = resources.files("mailwright.store").joinpath("schema.sql").read_text()
        self.conn.executescript(sql)
        for table, column, decl in ADDED_COLUMNS:
            have = {row[1] for row in self.conn.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                self.conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
        # Messages still to parse (stored before IMAP metadata): the start-up backfill
        # finds them here instead of scanning every message. After the migration above,
        # since older databases get meta_id only then.
        self.conn.execute("CREATE INDEX IF NOT EXISTS messages_unparsed ON messages (blob) "
                          "WHERE meta_id IS NULL")
        self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                          (SCHEMA_VERSION,))

    def _write(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run fn in the writer's transaction and wait (for blocking callers)."""
        return self._writer.submit(fn).result()

    def close(self) -> None:
        self._writer.submit(None).result()
        self._writer.join()
        self.conn.close()

    # --- domains ---------------------------------------------------------
    def _domain_id(self, domain: str) -> int | None:
        row = self.conn.execute("SELECT id FROM domains WHERE name=?", (domain,)).fetchone()
        return row[0] if row else None

    def add_domain(self, domain: str) -> str:
        name = _domain(domain)

        def job(c: sqlite3.Connection) -> None:
            try:
                c.execute("INSERT INTO domains (name, created) VALUES (?, ?)", (name, time.time()))
            except sqlite3.IntegrityError:
                raise StoreError(f"domain {display_domain(name)} already exists") from None
        self._write(job)
        return name

    def remove_domain(self, domain: str, force: bool = False) -> None:
        name = _domain(domain)

        def job(c: sqlite3.Connection) -> None:
            row = c.execute("SELECT id FROM domains WHERE name=?", (name,)).fetchone()
            if not row:
                raise StoreError(f"no such domain: {display_domain(name)}")
            n_acc = c.execute("SELECT count(*) FROM accounts WHERE domain_id=?", row).fetchone()[0]
            n_ali = c.execute("SELECT count(*) FROM aliases WHERE domain_id=?", row).fetchone()[0]
            if (n_acc or n_ali) and not force:
                raise StoreError(f"domain {display_domain(name)} still has {n_acc} account(s) "
                                 f"and {n_ali} alias(es); remove them first or pass --force")
            c.execute("DELETE FROM domains WHERE id=?", row)
        self._write(job)

    def list_domains(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT name FROM domains ORDER BY name")]

    def is_local_domain(self, domain: str) -> bool:
        return self._domain_id(domain) is not None

    # --- accounts --------------------------------------------------------
    def add_account(self, address: Address, password: str) -> None:
        hashed, keys = hash_password(password), scram_keys(password)

        def job(c: sqlite3.Connection) -> None:
            row = c.execute("SELECT id FROM domains WHERE name=?", (address.domain,)).fetchone()
            if not row:
                raise StoreError(f"no such domain: {display_domain(address.domain)} "
                                 f"(add it with: mailwright domain add {address.domain})")
            if c.execute("SELECT 1 FROM aliases WHERE lookup=?", (address.key,)).fetchone():
                raise StoreError(f"{address} is an alias; remove the alias first")
            try:
                cur = c.execute(
                    "INSERT INTO accounts (domain_id, local_part, lookup, password_hash, "
                    "scram_salt, scram_stored_key, scram_server_key, scram_iterations, created) "
                    "VALUES (?,?,?,?,?,?,?,?,?)",
                    (row[0], address.local_part, address.key, hashed, keys.salt,
                     keys.stored_key, keys.server_key, keys.iterations, time.time()))
            except sqlite3.IntegrityError:
                raise StoreError(f"account {address} already exists") from None
            account_id = cur.lastrowid
            # UIDVALIDITY (RFC 9051 §2.3.1.1): distinct per mailbox incarnation.
            base = int(time.time())
            for i, (name, special) in enumerate(DEFAULT_MAILBOXES):
                c.execute("INSERT INTO mailboxes (account_id, name, special_use, uidvalidity) "
                          "VALUES (?,?,?,?)", (account_id, name, special, base + i))
                # The mailboxes we provision start subscribed (clients that show
                # only subscribed mailboxes see them); CREATE does not subscribe.
                c.execute("INSERT INTO subscriptions (account_id, name) VALUES (?,?)",
                          (account_id, name))
        self._write(job)

    def set_password(self, address: Address, password: str) -> None:
        hashed, keys = hash_password(password), scram_keys(password)

        def job(c: sqlite3.Connection) -> None:
            cur = c.execute(
                "UPDATE accounts SET password_hash=?, scram_salt=?, scram_stored_key=?, "
                "scram_server_key=?, scram_iterations=? WHERE lookup=?",
                (hashed, keys.salt, keys.stored_key, keys.server_key, keys.iterations,
                 address.key))
            if cur.rowcount == 0:
                raise StoreError(f"no such account: {address}")
        self._write(job)

    def remove_account(self, address: Address) -> None:
        def job(c: sqlite3.Connection) -> list[str]:
            row = c.execute("SELECT id FROM accounts WHERE lookup=?", (address.key,)).fetchone()
            if not row:
                raise StoreError(f"no such account: {address}")
            blobs = [r[0] for r in c.execute(
                "SELECT DISTINCT m.blob FROM messages m JOIN mailboxes b ON m.mailbox_id=b.id "
                "WHERE b.account_id=?", row)]
            c.execute("DELETE FROM accounts WHERE id=?", row)
            return _release_blobs(c, blobs)
        for digest in self._write(job):
            self.blobs.remove(digest)

    def list_accounts(self, domain: str | None = None) -> list[AccountInfo]:
        sql = ("SELECT a.local_part, d.name, a.created, count(m.id), coalesce(sum(m.size), 0) "
               "FROM accounts a JOIN domains d ON a.domain_id=d.id "
               "LEFT JOIN mailboxes b ON b.account_id=a.id "
               "LEFT JOIN messages m ON m.mailbox_id=b.id ")
        args: tuple = ()
        if domain:
            sql += "WHERE d.name=? "
            args = (_domain(domain),)
        sql += "GROUP BY a.id ORDER BY d.name, a.lookup"
        return [AccountInfo(str(Address(lp, d)), created, n, size)
                for lp, d, created, n, size in self.conn.execute(sql, args)]

    def credentials(self, username: str) -> Credentials | None:
        try:
            key = parse_mailbox(username.strip()).key
        except AddressError:
            return None
        row = self.conn.execute(
            "SELECT a.local_part, d.name, password_hash, scram_salt, scram_stored_key, "
            "scram_server_key, scram_iterations FROM accounts a JOIN domains d "
            "ON a.domain_id=d.id WHERE lookup=?", (key,)).fetchone()
        if not row:
            return None
        return Credentials(str(Address(row[0], row[1])), row[2], ScramKeys(*row[3:]))

    # --- aliases ---------------------------------------------------------
    def add_alias(self, source: str, targets: list[str]) -> None:
        src_local, src_domain, lookup = _alias_source(source)
        if not targets:
            raise StoreError("an alias needs at least one target address")
        try:
            norm = [str(parse_mailbox(t)) for t in targets]
        except AddressError as e:
            raise StoreError(f"invalid target address: {e}") from None

        def job(c: sqlite3.Connection) -> None:
            row = c.execute("SELECT id FROM domains WHERE name=?", (src_domain,)).fetchone()
            if not row:
                raise StoreError(f"no such domain: {display_domain(src_domain)}")
            if c.execute("SELECT 1 FROM accounts WHERE lookup=?", (lookup,)).fetchone():
                raise StoreError(f"{source} is an account; an alias cannot shadow it")
            existing = c.execute("SELECT targets FROM aliases WHERE lookup=?",
                                 (lookup,)).fetchone()
            if existing:
                merged = json.loads(existing[0])
                merged += [t for t in norm if t.lower() not in {m.lower() for m in merged}]
                c.execute("UPDATE aliases SET targets=? WHERE lookup=?",
                          (json.dumps(merged), lookup))
            else:
                c.execute("INSERT INTO aliases (domain_id, local_part, lookup, targets, created) "
                          "VALUES (?,?,?,?,?)",
                          (row[0], src_local, lookup, json.dumps(norm), time.time()))
        self._write(job)

    def remove_alias(self, source: str) -> None:
        _, _, lookup = _alias_source(source)

        def job(c: sqlite3.Connection) -> None:
            if c.execute("DELETE FROM aliases WHERE lookup=?", (lookup,)).rowcount == 0:
                raise StoreError(f"no such alias: {source}")
        self._write(job)

    def list_aliases(self, domain: str | None = None) -> list[AliasInfo]:
        sql = ("SELECT a.local_part, d.name, a.targets FROM aliases a "
               "JOIN domains d ON a.domain_id=d.id ")
        args: tuple = ()
        if domain:
            sql += "WHERE d.name=? "
            args = (_domain(domain),)
        sql += "ORDER BY d.name, a.lookup"
        return [AliasInfo(str(Address(lp, d)) if lp else f"@{d}", json.loads(t))
                for lp, d, t in self.conn.execute(sql, args)]

    # --- lookups -------------------------------------------------------------
    def find_account(self, address: Address) -> int | None:
        row = self.conn.execute("SELECT id FROM accounts WHERE lookup=?",
                                (address.key,)).fetchone()
        return row[0] if row else None

    def alias(self, address: Address) -> list[str] | None:
        return self._alias_targets(address.key)

    def catch_all(self, domain: str) -> list[str] | None:
        return self._alias_targets(f"@{domain}")

    def _alias_targets(self, lookup: str) -> list[str] | None:
        row = self.conn.execute("SELECT targets FROM aliases WHERE lookup=?",
                                (lookup,)).fetchone()
        return json.loads(row[0]) if row else None

    # --- delivery ----------------------------------------------------------
    def spool(self) -> Spool:
        return self.blobs.spool()

    async def deliver(self, delivery: Delivery) -> None:
        local, relay = delivery.local_content, delivery.relay_content
        # Parsed once for every local copy, before the writer job (see ensure_meta):
        # on the loop (on the writer thread it would hold the GIL against the loop for
        # a whole batch), or for a spooled message in a thread (see _prepare_large).
        parsed = None
        if isinstance(local, Spooled) or isinstance(relay, Spooled):
            local, relay, parsed = await asyncio.to_thread(
                self._prepare_large, local if delivery.local else b"",
                relay if delivery.remote else b"")
        elif delivery.local:
            parsed = self._index(local)
        blobs = []
        if delivery.local:
            blobs.append(local)
        if delivery.remote:
            blobs.append(relay)
        now = time.time()
        local_size, relay_size = len(local), len(relay)

        def job(c: sqlite3.Connection, digests: list[str]) -> None:
            local_blob = digests[0] if delivery.local else None
            relay_blob = digests[-1] if delivery.remote else None
            meta_id = ensure_meta(c, local_blob, parsed) if local_blob else None
            for copy in delivery.local:
                add_messages(c, _first_mailbox(c, copy), [NewMessage(
                    local_blob, local_size, now, "", delivery.message_id, meta_id)])
            if delivery.remote:
                cur = c.execute(
                    "INSERT INTO queue (message_id, blob, size, mail_from, body, smtputf8, ret, "
                    "envid, sender_account, created) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (delivery.message_id, relay_blob, relay_size,
                     delivery.mail_from, delivery.body, int(delivery.smtputf8), delivery.ret,
                     delivery.envid, delivery.sender_account, now))
                c.executemany(
                    "INSERT INTO queue_recipients (queue_id, address, notify, orcpt, "
                    "next_attempt) VALUES (?,?,?,?,?)",
                    [(cur.lastrowid, r.address, r.notify, r.orcpt, now)
                     for r in delivery.remote])
        await self._writer.submit_async(job, tuple(blobs))

    def _prepare_large(self, local: Content, relay: Content
                       ) -> tuple[Content | Written, Content | Written, Indexed | None]:
        """Spooled copies written to their blob files now, and the local copy parsed
        from its file: read back in one allocation, the only time the message is
        whole in memory. Blocking: runs in a thread."""
        if isinstance(local, Spooled):
            local = self.blobs.prewrite(local)
        if isinstance(relay, Spooled):
            relay = self.blobs.prewrite(relay)
        parsed = self._index(local.read() if isinstance(local, Written) else local) \
            if local else None
        return local, relay, parsed

    def record_event(self, ts: float, type: str, session: str | None,
                     message_id: str | None, data: dict) -> None:
        self._writer.add_event((ts, type, session, message_id, json.dumps(data, default=str)))

    # --- outbound queue ----------------------------------------------------------
    _QUEUE_COLUMNS = ("q.id, q.message_id, q.mail_from, q.blob, q.size, q.body, q.smtputf8, "
                      "q.ret, q.envid, q.created")

    def _queue_rows(self, where: str, args: tuple,
                    conn: sqlite3.Connection | None = None) -> list[QueuedMessage]:
        rows = (conn or self.conn).execute(
            f"SELECT {self._QUEUE_COLUMNS}, r.id, r.address, r.notify, r.orcpt, r.state, "
            f"r.attempts, r.next_attempt, r.last_reply, r.delay_warned FROM queue q "
            f"JOIN queue_recipients r ON r.queue_id=q.id {where} ORDER BY q.id, r.id",
            args).fetchall()
        out: dict[int, QueuedMessage] = {}
        for row in rows:
            msg = out.get(row[0])
            if msg is None:
                msg = out[row[0]] = QueuedMessage(*row[:6], bool(row[6]), *row[7:10], [])
            msg.recipients.append(QueuedRecipient(*row[10:18], bool(row[18])))
        return list(out.values())

    async def queue_claim(self, now: float, limit: int, lease: float) -> list[QueuedMessage]:
        """Take due recipients for delivery: they carry a lease until their outcome is
        recorded, so another worker process does not deliver them too. The claim is
        a write, serialised with every other writer by SQLite."""
        due = "r.state IN ('pending','deferred') AND r.next_attempt<=? AND r.lease<=?"

        def job(c: sqlite3.Connection) -> list[QueuedMessage]:
            ids = [row[0] for row in c.execute(
                f"SELECT DISTINCT r.queue_id FROM queue_recipients r WHERE {due} "
                f"ORDER BY r.queue_id LIMIT ?", (now, now, limit))]
            if not ids:
                return []
            marks = ",".join("?" * len(ids))
            messages = self._queue_rows(f"WHERE q.id IN ({marks}) AND {due}",
                                        (*ids, now, now), c)
            c.executemany("UPDATE queue_recipients SET lease=? WHERE id=?",
                          [(now + lease, r.id) for m in messages for r in m.recipients])
            return messages
        return await self._writer.submit_async(job)

    def queue_release_leases(self) -> int:
        """At start-up, before any worker runs: claims of a crashed process lapse now."""
        return self._write(lambda c: c.execute(
            "UPDATE queue_recipients SET lease=0 WHERE lease>0").rowcount)

    def queue_messages(self) -> list[QueuedMessage]:
        return self._queue_rows("", ())

    def queue_message(self, message_id: str) -> QueuedMessage | None:
        found = self._queue_rows("WHERE q.message_id=?", (message_id,))
        return found[0] if found else None

    async def queue_update(self, queue_id: int, updates: list[RecipientUpdate],
                           final: Collection[str]) -> bool:
        now = time.time()

        def job(c: sqlite3.Connection) -> tuple[bool, list[str]]:
            c.executemany(
                "UPDATE queue_recipients SET state=?, last_reply=?, next_attempt=?, "
                "attempts=attempts+1, delay_warned=max(delay_warned, ?), lease=0 "
                "WHERE id=? AND queue_id=?",
                [(u.state, u.reply, u.next_attempt, int(u.delay_warned), u.recipient_id,
                  queue_id) for u in updates])
            c.executemany("INSERT INTO queue_attempts (queue_id, address, ts, remote, tls, "
                          "reply) VALUES (?,?,?,?,?,?)",
                          [(queue_id, u.address, now, u.remote, u.tls, u.reply)
                           for u in updates])
            return _drop_if_final(c, queue_id, final)
        done, files = await self._writer.submit_async(job)
        await self._unlink(files)
        return done

    def queue_attempts(self, message_id: str) -> list[dict]:
        rows = self.conn.execute(
            "SELECT a.ts, a.address, a.remote, a.tls, a.reply FROM queue_attempts a "
            "JOIN queue q ON a.queue_id=q.id WHERE q.message_id=? ORDER BY a.id",
            (message_id,))
        return [dict(zip(("ts", "address", "remote", "tls", "reply"), r, strict=True))
                for r in rows]

    def queue_set_state(self, message_id: str | None, state: str, now: float) -> int:
        # hold: pending/deferred -> held; release/retry: held/pending/deferred -> due now.
        sources = ("pending", "deferred") if state == "held" else ("held", "pending", "deferred")
        marks = ",".join("?" * len(sources))
        where = f"state IN ({marks})"
        args: tuple = sources
        if message_id is not None:
            where += " AND queue_id=(SELECT id FROM queue WHERE message_id=?)"
            args += (message_id,)
        new_state = "held" if state == "held" else "pending"

        def job(c: sqlite3.Connection) -> int:
            return c.execute(f"UPDATE queue_recipients SET state=?, next_attempt=? "
                             f"WHERE {where}", (new_state, now, *args)).rowcount
        return self._write(job)

    def queue_delete(self, message_id: str) -> bool:
        def job(c: sqlite3.Connection) -> list[str] | None:
            row = c.execute("SELECT id, blob FROM queue WHERE message_id=?",
                            (message_id,)).fetchone()
            if row is None:
                return None
            c.execute("DELETE FROM queue WHERE id=?", (row[0],))
            return _release_blobs(c, [row[1]])
        files = self._write(job)
        for digest in files or []:
            self.blobs.remove(digest)
        return files is not None

    # --- POP3 (RFC 1939) ------------------------------------------------------
    def maildrop(self, account: str) -> Maildrop:
        """The account's INBOX as POP3 sees it at login: UIDVALIDITY and messages by UID."""
        key = parse_mailbox(account).key
        box = self.conn.execute(
            "SELECT b.id, b.uidvalidity FROM mailboxes b JOIN accounts a ON b.account_id=a.id "
            "WHERE a.lookup=? AND b.name='INBOX'", (key,)).fetchone()
        if box is None:
            raise StoreError(f"no INBOX for {account}")
        rows = self.conn.execute("SELECT uid, size, blob FROM messages WHERE mailbox_id=? "
                                 "ORDER BY uid", (box[0],))
        return Maildrop(box[0], box[1], [MaildropMessage(*r) for r in rows])

    async def pop3_update(self, mailbox_id: int, deleted: list[int],
                          retrieved: list[int]) -> int:
        """The UPDATE state (RFC 1939 §6): remove deleted messages, note downloads.
        Returns how many were removed."""
        now = time.time()

        def job(c: sqlite3.Connection) -> tuple[int, list[str]]:
            c.executemany("UPDATE messages SET pop3_retrieved=? WHERE mailbox_id=? AND uid=? "
                          "AND pop3_retrieved IS NULL",
                          [(now, mailbox_id, uid) for uid in retrieved])
            gone, files = expunge_rows(c, mailbox_id, deleted, _release_blobs)
            return len(gone), files
        removed, files = await self._writer.submit_async(job)
        await self._unlink(files)
        return removed

    def set_pop3_expire(self, domain: str, days: int | None) -> None:
        name = _domain(domain)

        def job(c: sqlite3.Connection) -> None:
            if c.execute("UPDATE domains SET pop3_expire_days=? WHERE name=?",
                         (days, name)).rowcount == 0:
                raise StoreError(f"no such domain: {display_domain(name)}")
        self._write(job)

    def pop3_expire_days(self, account: str) -> int | None:
        row = self.conn.execute("SELECT pop3_expire_days FROM domains WHERE name=?",
                                (parse_mailbox(account).domain,)).fetchone()
        return row[0] if row else None

    def pop3_expire_policies(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT name, pop3_expire_days FROM domains "
                                      "WHERE pop3_expire_days IS NOT NULL"))

    def pop3_retrieved_by(self, domain: str, when: float) -> dict[int, list[int]]:
        rows = self.conn.execute(
            "SELECT m.mailbox_id, m.uid FROM messages m JOIN mailboxes b ON m.mailbox_id=b.id "
            "JOIN accounts a ON b.account_id=a.id JOIN domains d ON a.domain_id=d.id "
            "WHERE d.name=? AND b.name='INBOX' AND m.pop3_retrieved <= ? "
            "ORDER BY m.mailbox_id, m.uid", (domain, when))
        by_box: dict[int, list[int]] = {}
        for box, uid in rows:
            by_box.setdefault(box, []).append(uid)
        return by_box

    @staticmethod
    def _release(c: sqlite3.Connection, digests) -> list[str]:
        return _release_blobs(c, digests)

    async def _unlink(self, digests: list[str]) -> None:
        if digests:
            await asyncio.to_thread(lambda: [self.blobs.remove(d) for d in digests])

    # --- email authentication ---------------------------------------------------
    def add_dkim_keys(self, keys: list[DKIMKeyInfo]) -> None:
        def job(c: sqlite3.Connection) -> None:
            for k in keys:
                if c.execute("SELECT 1 FROM dkim_keys WHERE domain=? AND selector=?",
                             (k.domain, k.selector)).fetchone():
                    raise StoreError(f"selector {k.selector} already exists for {k.domain}")
                c.execute("INSERT INTO dkim_keys (domain, name, selector, algorithm, path, "
                          "txt, active, created) VALUES (?,?,?,?,?,?,?,?)",
                          (k.domain, k.name, k.selector, k.algorithm, k.path, k.txt,
                           int(k.active), k.created))
        self._write(job)

    def dkim_keys(self, domain: str | None = None) -> list[DKIMKeyInfo]:
        where, args = ("WHERE domain=?", (domain,)) if domain else ("", ())
        rows = self.conn.execute(
            "SELECT domain, name, selector, algorithm, path, txt, active, created "
            f"FROM dkim_keys {where} ORDER BY domain, created, selector", args).fetchall()
        return [DKIMKeyInfo(*r[:6], bool(r[6]), r[7]) for r in rows]

    def activate_dkim_keys(self, domain: str, name: str) -> None:
        def job(c: sqlite3.Connection) -> None:
            if not c.execute("SELECT 1 FROM dkim_keys WHERE domain=? AND name=?",
                             (domain, name)).fetchone():
                raise StoreError(f"no DKIM keys named {name} for {domain}")
            c.execute("UPDATE dkim_keys SET active=(name=?) WHERE domain=?", (name, domain))
        self._write(job)

    def remove_dkim_keys(self, domain: str, name: str) -> list[str]:
        """Retire a key set: returns the private key files to delete."""
        def job(c: sqlite3.Connection) -> list[str]:
            rows = c.execute("SELECT path, active FROM dkim_keys WHERE domain=? AND name=?",
                             (domain, name)).fetchall()
            if not rows:
                raise StoreError(f"no DKIM keys named {name} for {domain}")
            if any(active for _, active in rows):
                raise StoreError(f"{name} signs mail for {domain}; activate another key "
                                 "set first (mailwright dkim activate)")
            c.execute("DELETE FROM dkim_keys WHERE domain=? AND name=?", (domain, name))
            return [path for path, _ in rows]
        return self._write(job)

    # --- reading (for tests and later the IMAP engine) ---------------------------
    def read_blob(self, digest: str) -> bytes:
        row = self.conn.execute("SELECT data FROM blob_inline WHERE digest=?",
                                (digest,)).fetchone()
        return row[0] if row else self.blobs.read(digest)

    def mailbox_messages(self, address: Address, mailbox: str = "INBOX") -> list[dict]:
        rows = self.conn.execute(
            "SELECT m.uid, m.blob, m.size, m.flags, m.message_id FROM messages m "
            "JOIN mailboxes b ON m.mailbox_id=b.id JOIN accounts a ON b.account_id=a.id "
            "WHERE a.lookup=? AND b.name=? ORDER BY m.uid", (address.key, mailbox))
        return [dict(uid=u, blob=b, size=s, flags=f, message_id=i) for u, b, s, f, i in rows]

    def queued(self) -> list[dict]:
        rows = self.conn.execute(
            "SELECT q.message_id, q.mail_from, q.blob, r.address, r.notify, r.orcpt, r.state "
            "FROM queue q JOIN queue_recipients r ON r.queue_id=q.id ORDER BY q.id, r.id")
        keys = ("message_id", "mail_from", "blob", "address", "notify", "orcpt", "state")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def events(self, limit: int = 100) -> list[dict]:
        rows = self.conn.execute(
            "SELECT ts, type, session, message_id, data FROM events ORDER BY id DESC LIMIT ?",
            (limit,))
        return [dict(ts=t, type=ty, session=s, message_id=m, **json.loads(d))
                for t, ty, s, m, d in rows]


def _is_file(blob: Content | Written) -> bool:
    return isinstance(blob, Written) or len(blob) > INLINE_BLOB_MAX


def _first_mailbox(c: sqlite3.Connection, copy: LocalCopy) -> int:
    """The first of the copy's mailboxes that its account has."""
    for name in copy.mailboxes:
        row = c.execute("SELECT id FROM mailboxes WHERE account_id=? AND name=?",
                        (copy.account_id, name)).fetchone()
        if row:
            return row[0]
    raise StoreError(f"account {copy.account_id} has none of {', '.join(copy.mailboxes)}")


def _drop_if_final(c: sqlite3.Connection, queue_id: int, final: Collection[str]
                   ) -> tuple[bool, list[str]]:
    """Remove a queued message once every recipient's state is final."""
    states = list(final)
    marks = ",".join("?" * len(states))
    if c.execute(f"SELECT 1 FROM queue_recipients WHERE queue_id=? AND state NOT IN ({marks}) "
                 "LIMIT 1", (queue_id, *states)).fetchone():
        return False, []
    row = c.execute("SELECT blob FROM queue WHERE id=?", (queue_id,)).fetchone()
    c.execute("DELETE FROM queue WHERE id=?", (queue_id,))
    return True, _release_blobs(c, [row[0]] if row else [])


def _release_blobs(c: sqlite3.Connection, digests) -> list[str]:
    """Drop the blobs nothing references any more: inline ones now, in this
    transaction; file ones are returned, to be unlinked after the commit."""
    files = []
    for digest in set(digests):
        if c.execute("SELECT 1 FROM messages WHERE blob=? UNION ALL "
                     "SELECT 1 FROM queue WHERE blob=? LIMIT 1", (digest, digest)).fetchone():
            continue
        drop_meta(c, digest)
        if c.execute("DELETE FROM blob_inline WHERE digest=?", (digest,)).rowcount == 0:
            files.append(digest)
    return files


def _domain(text: str) -> str:
    try:
        return canonical_domain(text.strip())
    except AddressError as e:
        raise StoreError(f"invalid domain {text!r}: {e}") from None


def _alias_source(source: str) -> tuple[str, str, str]:
    """(local part, domain, lookup key) of an alias source; '@domain' is the catch-all."""
    if source.startswith("@"):
        domain = _domain(source[1:])
        return "", domain, f"@{domain}"
    try:
        a = parse_mailbox(source)
    except AddressError as e:
        raise StoreError(f"invalid alias address {source!r}: {e}") from None
    return a.local_part, a.domain, a.key
