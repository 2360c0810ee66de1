"""Webhooks for SQLite (store/webhooks.py). The fan-out into the outbox is the
`webhook_fanout` trigger on the events table (schema.sql): it runs in the writer's
transaction that stores the event, in whichever process emitted it."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ..events import StoredEvent
from ..webhooks import (
    DELIVERY_COLUMNS,
    ENDPOINT_COLUMNS,
    EVENT_COLUMNS,
    PENDING,
    PendingWebhook,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookOutcome,
)


def _endpoint(row: tuple) -> WebhookEndpoint:
    endpoint_id, url, domain, events, secret, created, disabled, failures, retry_at = row
    return WebhookEndpoint(endpoint_id, url, domain, tuple(json.loads(events)), secret, created,
                           disabled, failures, retry_at)


def _pending(row: tuple) -> PendingWebhook:
    event = StoredEvent(*row[11:19], json.loads(row[19]))
    return PendingWebhook(WebhookDelivery(*row[:11]), event)


class SQLiteWebhooks:
    conn: sqlite3.Connection
    _write: Any

    def _endpoint_row(self, c: sqlite3.Connection, endpoint_id: int) -> tuple | None:
        return c.execute(f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints e WHERE e.id=?",
                         (endpoint_id,)).fetchone()

    def _delivery_row(self, c: sqlite3.Connection, delivery_id: int) -> tuple | None:
        return c.execute(f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d "
                         f"JOIN events ev ON ev.id=d.event_id WHERE d.id=?",
                         (delivery_id,)).fetchone()

    # --- endpoints -----------------------------------------------------------------------
    async def add_webhook(self, url: str, domain: str | None, events: tuple[str, ...],
                          secret: str, created: float) -> WebhookEndpoint:
        def job(c: sqlite3.Connection) -> int:
            return c.execute(
                "INSERT INTO webhook_endpoints (url, domain, events, secret, created) "
                "VALUES (?,?,?,?,?)",
                (url, domain, json.dumps(list(events)), secret, created)).lastrowid
        endpoint_id = await self._write(job)
        return WebhookEndpoint(endpoint_id, url, domain, events, secret, created, None, 0, 0.0)

    async def webhooks(self, domain: str | None = None) -> list[WebhookEndpoint]:
        where, args = ("WHERE e.domain=?", (domain,)) if domain is not None else ("", ())
        return [_endpoint(r) for r in self.conn.execute(
            f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints e {where} ORDER BY e.id", args)]

    async def webhook(self, endpoint_id: int) -> WebhookEndpoint | None:
        row = self._endpoint_row(self.conn, endpoint_id)
        return _endpoint(row) if row else None

    async def remove_webhook(self, endpoint_id: int) -> bool:
        return await self._write(lambda c: c.execute(
            "DELETE FROM webhook_endpoints WHERE id=?", (endpoint_id,)).rowcount > 0)

    async def set_webhook_disabled(self, endpoint_id: int, when: float | None
                                   ) -> WebhookEndpoint | None:
        def job(c: sqlite3.Connection) -> tuple | None:
            if when is None:
                c.execute("UPDATE webhook_endpoints SET disabled=NULL, failures=0, retry_at=0 "
                          "WHERE id=?", (endpoint_id,))
            else:
                c.execute("UPDATE webhook_endpoints SET disabled=coalesce(disabled, ?) "
                          "WHERE id=?", (when, endpoint_id))
            return self._endpoint_row(c, endpoint_id)
        row = await self._write(job)
        return _endpoint(row) if row else None

    # --- the delivery log ----------------------------------------------------------------
    async def webhook_deliveries(self, endpoint_id: int, limit: int,
                                 before: int | None = None, state: str | None = None
                                 ) -> list[WebhookDelivery]:
        where, args = ["d.endpoint_id=?"], [endpoint_id]
        if before is not None:
            where.append("d.id<?")
            args.append(before)
        if state is not None:
            where.append("d.state=?")
            args.append(state)
        rows = self.conn.execute(
            f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d "
            "JOIN events ev ON ev.id=d.event_id "
            f"WHERE {' AND '.join(where)} ORDER BY d.id DESC LIMIT ?", (*args, limit))
        return [WebhookDelivery(*r) for r in rows]

    async def webhook_delivery(self, delivery_id: int) -> WebhookDelivery | None:
        row = self._delivery_row(self.conn, delivery_id)
        return WebhookDelivery(*row) if row else None

    async def redeliver_webhook(self, delivery_id: int, when: float) -> WebhookDelivery | None:
        def job(c: sqlite3.Connection) -> tuple | None:
            c.execute("UPDATE webhook_deliveries SET state=?, queued=?, done=NULL "
                      "WHERE id=? AND state!=?", (PENDING, when, delivery_id, PENDING))
            return self._delivery_row(c, delivery_id)
        row = await self._write(job)
        return WebhookDelivery(*row) if row else None

    # --- the dispatcher's ----------------------------------------------------------------
    async def webhooks_due(self, now: float) -> tuple[list[WebhookEndpoint], float | None]:
        waiting = [_endpoint(r) for r in self.conn.execute(
            f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints e "
            "WHERE e.disabled IS NULL AND EXISTS "
            "(SELECT 1 FROM webhook_deliveries d WHERE d.endpoint_id=e.id AND d.state=?) "
            "ORDER BY e.id", (PENDING,))]
        paused = [e.retry_at for e in waiting if e.retry_at > now]
        return [e for e in waiting if e.retry_at <= now], min(paused, default=None)

    async def webhook_pending(self, endpoint_id: int, limit: int) -> list[PendingWebhook]:
        rows = self.conn.execute(
            f"SELECT {DELIVERY_COLUMNS}, {EVENT_COLUMNS} FROM webhook_deliveries d "
            "JOIN webhook_endpoints e ON e.id=d.endpoint_id AND e.disabled IS NULL "
            "JOIN events ev ON ev.id=d.event_id "
            "WHERE d.endpoint_id=? AND d.state=? ORDER BY d.id LIMIT ?",
            (endpoint_id, PENDING, limit))
        return [_pending(r) for r in rows]

    async def webhook_backlog(self) -> dict[str, int]:
        # Counted off the partial index of pending rows: delivered and failed ones
        # (the log) may be many, and are not a backlog.
        (pending,) = self.conn.execute("SELECT count(*) FROM webhook_deliveries "
                                       "WHERE state=?", (PENDING,)).fetchone()
        return {PENDING: pending}

    async def webhook_outcome(self, outcome: WebhookOutcome) -> None:
        o = outcome
        done = None if o.state == PENDING else o.when

        def job(c: sqlite3.Connection) -> None:
            if not o.attempted:
                c.execute("UPDATE webhook_deliveries SET state=?, last_error=?, done=? "
                          "WHERE id=?", (o.state, o.error, done, o.delivery_id))
                return
            c.execute("UPDATE webhook_deliveries SET state=?, attempts=attempts+1, "
                      "last_attempt=?, last_status=?, last_error=?, done=? WHERE id=?",
                      (o.state, o.when, o.status, o.error, done, o.delivery_id))
            c.execute("UPDATE webhook_endpoints SET failures=?, retry_at=?, "
                      "disabled=CASE WHEN ? THEN coalesce(disabled, ?) ELSE disabled END "
                      "WHERE id=?", (o.failures, o.retry_at, o.disable, o.when, o.endpoint_id))
        await self._write(job)
