"""The outbound queue for SQLite: enqueue (in the delivery's transaction), claims
with leases, attempt outcomes, admin changes. The rule of when a message is done
comes from the runner (queue/states.py FINAL)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Collection
from typing import Any

from ..messages import Delivery
from ..queue import FinishedMessage, QueuedMessage, QueuedRecipient, RecipientUpdate
from .blobrefs import release_blobs


def enqueue(c: sqlite3.Connection, delivery: Delivery, blob: str, size: int,
            now: float) -> None:
    """The delivery's remote recipients into the queue, due now (in its transaction)."""
    cur = c.execute(
        "INSERT INTO queue (message_id, blob, size, mail_from, body, smtputf8, ret, "
        "envid, sender_account, created, tag) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (delivery.message_id, blob, size, delivery.mail_from, delivery.body,
         int(delivery.smtputf8), delivery.ret, delivery.envid, delivery.sender_account, now,
         delivery.tag))
    c.executemany(
        "INSERT INTO queue_recipients (queue_id, address, notify, orcpt, "
        "next_attempt) VALUES (?,?,?,?,?)",
        [(cur.lastrowid, r.address, r.notify, r.orcpt, now) for r in delivery.remote])


class SQLiteQueue:
    conn: sqlite3.Connection
    _write: Any

    _QUEUE_COLUMNS = ("q.id, q.message_id, q.mail_from, q.blob, q.size, q.body, q.smtputf8, "
                      "q.ret, q.envid, q.created, q.tag, q.sender_account")

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
                msg = out[row[0]] = QueuedMessage(*row[:6], bool(row[6]), *row[7:10], [],
                                                  row[10], row[11])
            msg.recipients.append(QueuedRecipient(*row[12:20], bool(row[20])))
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

    async def queue_release_leases(self) -> int:
        """At start-up, before any worker runs: claims of a crashed process lapse now."""
        return await self._write(lambda c: c.execute(
            "UPDATE queue_recipients SET lease=0 WHERE lease>0").rowcount)

    async def queue_messages(self) -> list[QueuedMessage]:
        return self._queue_rows("", ())

    async def queue_message(self, message_id: str) -> QueuedMessage | None:
        found = self._queue_rows("WHERE q.message_id=?", (message_id,))
        return found[0] if found else None

    async def queue_depth(self) -> dict[str, int]:
        # Answered from the (state, next_attempt) index alone: no table rows are read.
        return dict(self.conn.execute(
            "SELECT state, count(*) FROM queue_recipients GROUP BY state").fetchall())

    async def queue_update(self, queue_id: int, updates: list[RecipientUpdate],
                           final: Collection[str], keep_finished: bool = False) -> bool:
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
            return _drop_if_final(c, queue_id, final, keep_finished, now)
        done, files = await self._writer.submit_async(job)
        await self._unlink(files)
        return done

    async def queue_attempts(self, message_id: str) -> list[dict]:
        rows = self.conn.execute(
            "SELECT a.ts, a.address, a.remote, a.tls, a.reply FROM queue_attempts a "
            "JOIN queue q ON a.queue_id=q.id WHERE q.message_id=? ORDER BY a.id",
            (message_id,))
        return [dict(zip(("ts", "address", "remote", "tls", "reply"), r, strict=True))
                for r in rows]

    async def queue_finished(self, message_id: str) -> FinishedMessage | None:
        row = self.conn.execute(
            "SELECT message_id, mail_from, blob, size, finished FROM queue_finished "
            "WHERE message_id=?", (message_id,)).fetchone()
        return FinishedMessage(*row) if row else None

    async def prune_finished(self, before: float, batch: int) -> int:
        def job(c: sqlite3.Connection) -> tuple[int, list[str]]:
            rows = c.execute("SELECT id, blob FROM queue_finished WHERE finished<? "
                             "ORDER BY finished LIMIT ?", (before, batch)).fetchall()
            c.executemany("DELETE FROM queue_finished WHERE id=?", [(r[0],) for r in rows])
            return len(rows), release_blobs(c, [r[1] for r in rows])
        removed = 0
        while True:
            count, files = await self._write(job)
            await self._unlink(files)
            removed += count
            if count < batch:
                return removed

    async def queue_set_state(self, message_id: str | None, state: str, now: float) -> int:
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
        return await self._write(job)

    async def queue_delete(self, message_id: str) -> bool:
        def job(c: sqlite3.Connection) -> list[str] | None:
            row = c.execute("SELECT id, blob FROM queue WHERE message_id=?",
                            (message_id,)).fetchone()
            if row is None:
                return None
            c.execute("DELETE FROM queue WHERE id=?", (row[0],))
            return release_blobs(c, [row[1]])
        files = await self._write(job)
        await self._unlink(files or [])
        return files is not None

    def queued(self) -> list[dict]:
        rows = self.conn.execute(
            "SELECT q.message_id, q.mail_from, q.blob, r.address, r.notify, r.orcpt, r.state "
            "FROM queue q JOIN queue_recipients r ON r.queue_id=q.id ORDER BY q.id, r.id")
        keys = ("message_id", "mail_from", "blob", "address", "notify", "orcpt", "state")
        return [dict(zip(keys, r, strict=True)) for r in rows]


def _drop_if_final(c: sqlite3.Connection, queue_id: int, final: Collection[str],
                   keep: bool, now: float) -> tuple[bool, list[str]]:
    """Remove a queued message once every recipient's state is final; with `keep`, its
    text stays referenced as a finished message (so release_blobs leaves it)."""
    states = list(final)
    marks = ",".join("?" * len(states))
    if c.execute(f"SELECT 1 FROM queue_recipients WHERE queue_id=? AND state NOT IN ({marks}) "
                 "LIMIT 1", (queue_id, *states)).fetchone():
        return False, []
    if keep:
        # OR IGNORE: a message id is finished once; should one come back, its blob is
        # not kept, and release_blobs, seeing no reference, frees it.
        c.execute("INSERT OR IGNORE INTO queue_finished (message_id, blob, size, mail_from, "
                  "finished) SELECT message_id, blob, size, mail_from, ? FROM queue "
                  "WHERE id=?", (now, queue_id))
    row = c.execute("SELECT blob FROM queue WHERE id=?", (queue_id,)).fetchone()
    c.execute("DELETE FROM queue WHERE id=?", (queue_id,))
    return True, release_blobs(c, [row[0]] if row else [])
