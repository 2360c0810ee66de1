"""The outbound queue on PostgreSQL, shared by every node: claims with leases.

A claim locks the due messages' queue rows with FOR NO KEY UPDATE SKIP LOCKED, so
two nodes (or two worker processes) claiming at once take disjoint messages without
waiting for each other, and marks their due recipients with a lease (claimed until
`now + lease`) and the claiming node's id (node.py). A recipient stays out of every
other claim until its outcome is recorded (queue_update clears the lease) or the
lease runs out; so a node that dies mid-delivery has its claims taken over by the
others once its leases expire.

The crash window. The remote server answers 250, then queue_update commits the
outcome. A node killed between the two (kill -9, power loss, its database connection
cut) leaves the recipient pending with a lease; when the lease runs out another node
(or this one, restarted) sends the message again: delivery is at least once. The
window is the time from the remote 250 to our COMMIT (milliseconds; the runner
commits each message as soon as its recipients all have an outcome). Nothing
acknowledged is ever lost: the queue row is committed before the SMTP "250" that
accepted the message.

Start-up (queue_release_leases): a node voids only the claims of its own previous
run (claimed_by = this node's id, read from data_dir/node-id), since no worker of this
node runs yet; other nodes' claims are theirs, live or not, and lapse with their
leases. Two nodes must never share a data_dir (nor a copied node-id file), or one's
start-up would void the other's live claims.

Times (now, next_attempt, lease) are the nodes' clocks, as in the SQLite backend; with
several nodes, keep them in step (NTP): a node whose clock runs ahead by more than
the lease would take over claims still in flight.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from functools import cached_property
from pathlib import Path

from ..messages import Delivery
from ..queue import FinishedMessage, QueuedMessage, QueuedRecipient, RecipientUpdate
from .blobrefs import release_blobs
from .db import Cursor, Database
from .node import node_id

_QUEUE_COLUMNS = ("q.id, q.message_id, q.mail_from, q.blob, q.size, q.body, q.smtputf8, "
                  "q.ret, q.envid, q.created, q.tag, q.sender_account")
_RECIPIENT_COLUMNS = ("r.id, r.address, r.notify, r.orcpt, r.state, r.attempts, "
                      "r.next_attempt, r.last_reply, r.delay_warned")
_DUE = ("r.state IN ('pending','deferred') AND r.next_attempt<=%(now)s "
        "AND r.lease<=%(now)s")


async def enqueue(cur: Cursor, delivery: Delivery, blob: str, size: int, now: float) -> None:
    """The delivery's remote recipients into the queue, due now (in its transaction):
    one statement for the message and its recipients."""
    await cur.execute(
        "WITH q AS (INSERT INTO queue (message_id, blob, size, mail_from, body, smtputf8, "
        "ret, envid, sender_account, created, tag) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
        "RETURNING id) "
        "INSERT INTO queue_recipients (queue_id, address, notify, orcpt, next_attempt) "
        "SELECT q.id, r.address, r.notify, r.orcpt, %s FROM q, "
        "unnest(%s::text[], %s::text[], %s::text[]) AS r(address, notify, orcpt)",
        (delivery.message_id, blob, size, delivery.mail_from, delivery.body,
         delivery.smtputf8, delivery.ret, delivery.envid, delivery.sender_account, now,
         delivery.tag, now, [r.address for r in delivery.remote],
         [r.notify for r in delivery.remote], [r.orcpt for r in delivery.remote]))


def _messages(rows: list[tuple]) -> list[QueuedMessage]:
    """Rows of queue columns then recipient columns, ordered by message: the messages."""
    out: dict[int, QueuedMessage] = {}
    for row in rows:
        msg = out.get(row[0])
        if msg is None:
            msg = out[row[0]] = QueuedMessage(*row[:10], [], row[10], row[11])
        msg.recipients.append(QueuedRecipient(*row[12:21]))
    return list(out.values())


class PostgresQueue:
    db: Database
    data_dir: Path

    @cached_property
    def node(self) -> str:
        """This node's id, the mark on its claims (node.py)."""
        return node_id(self.data_dir)

    async def _queue_rows(self, where: str, args) -> list[QueuedMessage]:
        return _messages(await self.db.fetchall(
            f"SELECT {_QUEUE_COLUMNS}, {_RECIPIENT_COLUMNS} FROM queue q "
            f"JOIN queue_recipients r ON r.queue_id=q.id {where} ORDER BY q.id, r.id", args))

    async def queue_claim(self, now: float, limit: int, lease: float) -> list[QueuedMessage]:
        """Due recipients of at most `limit` messages, leased to this node: one
        statement. The queue rows are locked for its length only (SKIP LOCKED: another
        node's claim running now takes other messages); the lease keeps them out of
        later claims until the outcome is recorded."""
        async def claim(cur: Cursor) -> list[QueuedMessage]:
            await cur.execute(
                f"WITH m AS (SELECT q.id FROM queue q WHERE q.id IN "
                f"(SELECT r.queue_id FROM queue_recipients r WHERE {_DUE}) "
                f"ORDER BY q.id LIMIT %(limit)s FOR NO KEY UPDATE SKIP LOCKED), "
                f"r AS (UPDATE queue_recipients r SET lease=%(until)s, claimed_by=%(node)s "
                f"FROM m WHERE r.queue_id=m.id AND {_DUE} RETURNING r.*) "
                f"SELECT {_QUEUE_COLUMNS}, {_RECIPIENT_COLUMNS} FROM r "
                f"JOIN queue q ON q.id=r.queue_id ORDER BY q.id, r.id",
                {"now": now, "limit": limit, "until": now + lease, "node": self.node})
            return _messages(await cur.fetchall())
        return await self.db.transaction(claim)

    async def queue_release_leases(self) -> int:
        """At this node's start-up, before any of its workers runs: the claims of its
        previous run are void (see the module's docstring); other nodes' stand."""
        return await self.db.statement(
            "UPDATE queue_recipients SET lease=0, claimed_by=NULL "
            "WHERE claimed_by=%s AND lease>0", (self.node,))

    async def queue_messages(self) -> list[QueuedMessage]:
        return await self._queue_rows("", ())

    async def queue_message(self, message_id: str) -> QueuedMessage | None:
        found = await self._queue_rows("WHERE q.message_id=%s", (message_id,))
        return found[0] if found else None

    async def queue_depth(self) -> dict[str, int]:
        return dict(await self.db.fetchall(
            "SELECT state, count(*) FROM queue_recipients GROUP BY state"))

    async def queue_update(self, queue_id: int, updates: list[RecipientUpdate],
                           final: Collection[str], keep_finished: bool = False) -> bool:
        now = time.time()

        async def record(cur: Cursor) -> bool:
            # One statement: lock the message's queue row (outcomes of one message
            # recorded by two nodes at once are serialised, so the second sees the
            # first's and the last one drops the message), record the outcomes and log
            # the attempts; it answers whether the message is still queued.
            await cur.execute(
                "WITH m AS (SELECT id FROM queue WHERE id=%(queue)s FOR NO KEY UPDATE), "
                "u AS (SELECT * FROM unnest(%(id)s::bigint[], %(state)s::text[], "
                "%(reply)s::text[], %(next)s::float8[], %(warned)s::boolean[], "
                "%(address)s::text[], %(remote)s::text[], %(tls)s::text[]) "
                "AS u(id, state, reply, next, warned, address, remote, tls)), "
                "changed AS (UPDATE queue_recipients r SET state=u.state, "
                "last_reply=u.reply, next_attempt=u.next, attempts=r.attempts+1, "
                "delay_warned=r.delay_warned OR u.warned, lease=0, claimed_by=NULL "
                "FROM u, m WHERE r.id=u.id AND r.queue_id=m.id), "
                "logged AS (INSERT INTO queue_attempts (queue_id, address, ts, remote, tls, "
                "reply) SELECT m.id, u.address, %(now)s, u.remote, u.tls, u.reply FROM u, m) "
                "SELECT count(*) FROM m",
                {"queue": queue_id, "now": now,
                 "id": [u.recipient_id for u in updates],
                 "state": [u.state for u in updates], "reply": [u.reply for u in updates],
                 "next": [u.next_attempt for u in updates],
                 "warned": [u.delay_warned for u in updates],
                 "address": [u.address for u in updates],
                 "remote": [u.remote for u in updates], "tls": [u.tls for u in updates]})
            queued = (await cur.fetchone())[0]
            if not queued:              # deleted meanwhile (queue_delete): it has left
                return True
            return await _drop_if_final(cur, queue_id, final, keep_finished, now)
        return await self.db.transaction(record)

    async def queue_attempts(self, message_id: str) -> list[dict]:
        rows = await self.db.fetchall(
            "SELECT a.ts, a.address, a.remote, a.tls, a.reply FROM queue_attempts a "
            "JOIN queue q ON a.queue_id=q.id WHERE q.message_id=%s ORDER BY a.id",
            (message_id,))
        return [dict(zip(("ts", "address", "remote", "tls", "reply"), r, strict=True))
                for r in rows]

    async def queue_finished(self, message_id: str) -> FinishedMessage | None:
        row = await self.db.fetchone(
            "SELECT message_id, mail_from, blob, size, finished FROM queue_finished "
            "WHERE message_id=%s", (message_id,))
        return FinishedMessage(*row) if row else None

    async def prune_finished(self, before: float, batch: int) -> int:
        async def prune(cur: Cursor) -> int:
            # SKIP LOCKED: nodes pruning at once take different rows.
            await cur.execute(
                "DELETE FROM queue_finished WHERE id IN (SELECT id FROM queue_finished "
                "WHERE finished<%s ORDER BY finished LIMIT %s FOR UPDATE SKIP LOCKED) "
                "RETURNING blob", (before, batch))
            blobs = [row[0] for row in await cur.fetchall()]
            await release_blobs(cur, blobs)
            return len(blobs)
        removed = 0
        while True:
            count = await self.db.transaction(prune)
            removed += count
            if count < batch:
                return removed

    async def queue_set_state(self, message_id: str | None, state: str, now: float) -> int:
        # hold: pending/deferred -> held; release/retry: held/pending/deferred -> due now.
        sources = ["pending", "deferred"] if state == "held" else \
            ["held", "pending", "deferred"]
        where = "state = ANY(%s)"
        args: tuple = (sources,)
        if message_id is not None:
            where += " AND queue_id=(SELECT id FROM queue WHERE message_id=%s)"
            args += (message_id,)
        new_state = "held" if state == "held" else "pending"
        return await self.db.statement(
            f"UPDATE queue_recipients SET state=%s, next_attempt=%s WHERE {where}",
            (new_state, now, *args))

    async def queue_delete(self, message_id: str) -> bool:
        async def delete(cur: Cursor) -> bool:
            await cur.execute("DELETE FROM queue WHERE message_id=%s RETURNING blob",
                              (message_id,))
            row = await cur.fetchone()
            if row is None:
                return False
            await release_blobs(cur, [row[0]])
            return True
        return await self.db.transaction(delete)


async def _drop_if_final(cur: Cursor, queue_id: int, final: Collection[str], keep: bool,
                         now: float) -> bool:
    """Remove a queued message (its row locked by the caller) once every recipient's
    state is final; with `keep`, its text stays referenced as a finished message (so
    release_blobs leaves it)."""
    await cur.execute("DELETE FROM queue q WHERE id=%s AND NOT EXISTS (SELECT 1 FROM "
                      "queue_recipients r WHERE r.queue_id=q.id AND NOT r.state = ANY(%s)) "
                      "RETURNING message_id, blob, size, mail_from", (queue_id, list(final)))
    row = await cur.fetchone()
    if row is None:
        return False
    if keep:
        # A message id is finished once; should one come back, its blob is not kept,
        # and release_blobs, seeing no reference, frees it.
        await cur.execute("INSERT INTO queue_finished (message_id, blob, size, mail_from, "
                          "finished) VALUES (%s,%s,%s,%s,%s) ON CONFLICT (message_id) "
                          "DO NOTHING", (*row, now))
    await release_blobs(cur, [row[1]])
    return True
