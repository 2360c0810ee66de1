"""Webhooks for PostgreSQL (store/webhooks.py). The fan-out into the outbox is the
`webhook_fanout` trigger on the events table (0001_initial.sql), in the statement
that stores the event, on whichever node recorded it.

A dispatcher (webhooks/dispatcher.py) sends an endpoint's deliveries as one lane: in
order, one at a time. Whichever nodes run one (one leader's, two while the lead passes
from one to another), an endpoint's lane is claimed in the database: webhook_pending
hands out deliveries only to the node that holds the endpoint's lane
(webhook_endpoints.lane), taking it when it is free or its claim has run out (FOR
UPDATE SKIP LOCKED: a node never waits for another's claim, it gets nothing). A claim
lasts LANE_LEASE seconds of the database's clock, renewed with each batch and outcome;
it ends when the lane finds nothing left or a delivery fails, and when the store
closes. So no delivery is handed to two nodes at once, and a node that dies mid-lane
holds its endpoints for at most LANE_LEASE. webhooks_due leaves out the endpoints
another node's lane holds, so a dispatcher does not start lanes that get nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

from psycopg.types.json import Jsonb

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
from .db import Database

# Seconds a node's claim on an endpoint's lane lasts unless renewed: longer than one
# attempt can take (webhooks.timeout plus reading the answer), or another node could
# take the lane over while an answer is still awaited.
LANE_LEASE = 300.0
_NOW = "extract(epoch FROM clock_timestamp())"
# The lane is free for node %(node)s: nobody's, its own, or its claim ran out.
_FREE = f"(e.lane IS NULL OR e.lane=%(node)s OR e.lane_until<{_NOW})"



def _endpoint(row: tuple) -> WebhookEndpoint:
    endpoint_id, url, domain, events, secret, created, disabled, failures, retry_at = row
    return WebhookEndpoint(endpoint_id, url, domain, tuple(events), secret, created,
                           disabled, failures, retry_at)


def _pending(row: tuple) -> PendingWebhook:
    return PendingWebhook(WebhookDelivery(*row[:11]), StoredEvent(*row[11:20]))


class PostgresWebhooks:
    db: Database

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._node = uuid.uuid4().hex            # this store's name on the lanes it holds

    def close(self) -> None:
        # Lanes still held (a dispatcher cancelled mid-lane) are free for other nodes now.
        self.db.call(self.db.statement_here(
            "UPDATE webhook_endpoints SET lane=NULL, lane_until=0 WHERE lane=%s",
            (self._node,)))
        super().close()                                    # type: ignore[misc]

    async def _delivery_row(self, delivery_id: int) -> tuple | None:
        return await self.db.fetchone(
            f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN events ev "
            "ON ev.id=d.event_id WHERE d.id=%s", (delivery_id,))

    # --- endpoints -----------------------------------------------------------------------
    async def add_webhook(self, url: str, domain: str | None, events: tuple[str, ...],
                          secret: str, created: float) -> WebhookEndpoint:
        row = await self.db.fetchone(
            "INSERT INTO webhook_endpoints (url, domain, events, secret, created) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (url, domain, Jsonb(list(events)), secret, created))
        assert row is not None
        return WebhookEndpoint(row[0], url, domain, events, secret, created, None, 0, 0.0)

    async def webhooks(self, domain: str | None = None) -> list[WebhookEndpoint]:
        where, args = ("WHERE e.domain=%s", (domain,)) if domain is not None else ("", ())
        return [_endpoint(r) for r in await self.db.fetchall(
            f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints e {where} ORDER BY e.id", args)]

    async def webhook(self, endpoint_id: int) -> WebhookEndpoint | None:
        row = await self.db.fetchone(
            f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints e WHERE e.id=%s", (endpoint_id,))
        return _endpoint(row) if row else None

    async def remove_webhook(self, endpoint_id: int) -> bool:
        return await self.db.statement("DELETE FROM webhook_endpoints WHERE id=%s",
                                       (endpoint_id,)) > 0

    async def set_webhook_disabled(self, endpoint_id: int, when: float | None
                                   ) -> WebhookEndpoint | None:
        if when is None:
            sql, args = ("UPDATE webhook_endpoints e SET disabled=NULL, failures=0, retry_at=0 "
                         f"WHERE e.id=%s RETURNING {ENDPOINT_COLUMNS}", (endpoint_id,))
        else:
            sql, args = ("UPDATE webhook_endpoints e SET disabled=coalesce(disabled, %s) "
                         f"WHERE e.id=%s RETURNING {ENDPOINT_COLUMNS}", (when, endpoint_id))
        row = await self.db.fetchone(sql, args)
        return _endpoint(row) if row else None

    # --- the delivery log ----------------------------------------------------------------
    async def webhook_deliveries(self, endpoint_id: int, limit: int,
                                 before: int | None = None, state: str | None = None
                                 ) -> list[WebhookDelivery]:
        where, args = ["d.endpoint_id=%s"], [endpoint_id]
        if before is not None:
            where.append("d.id<%s")
            args.append(before)
        if state is not None:
            where.append("d.state=%s")
            args.append(state)
        rows = await self.db.fetchall(
            f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d "
            "JOIN events ev ON ev.id=d.event_id "
            f"WHERE {' AND '.join(where)} ORDER BY d.id DESC LIMIT %s", (*args, limit))
        return [WebhookDelivery(*r) for r in rows]

    async def webhook_delivery(self, delivery_id: int) -> WebhookDelivery | None:
        row = await self._delivery_row(delivery_id)
        return WebhookDelivery(*row) if row else None

    async def redeliver_webhook(self, delivery_id: int, when: float) -> WebhookDelivery | None:
        await self.db.statement(
            "UPDATE webhook_deliveries SET state=%s, queued=%s, done=NULL "
            "WHERE id=%s AND state<>%s", (PENDING, when, delivery_id, PENDING))
        row = await self._delivery_row(delivery_id)
        return WebhookDelivery(*row) if row else None

    # --- the dispatcher's ----------------------------------------------------------------
    async def webhooks_due(self, now: float) -> tuple[list[WebhookEndpoint], float | None]:
        waiting = [_endpoint(r) for r in await self.db.fetchall(
            f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints e WHERE e.disabled IS NULL "
            f"AND {_FREE} AND EXISTS (SELECT 1 FROM webhook_deliveries d "
            "WHERE d.endpoint_id=e.id AND d.state=%(pending)s) ORDER BY e.id",
            {"node": self._node, "pending": PENDING})]
        paused = [e.retry_at for e in waiting if e.retry_at > now]
        return [e for e in waiting if e.retry_at <= now], min(paused, default=None)

    async def webhook_pending(self, endpoint_id: int, limit: int) -> list[PendingWebhook]:
        # Claim (or renew) the lane and read its next deliveries: one statement.
        rows = await self.db.fetchall(
            "WITH lane AS (UPDATE webhook_endpoints SET lane=%(node)s, "
            f"lane_until={_NOW} + %(lease)s WHERE id=(SELECT e.id FROM webhook_endpoints e "
            f"WHERE e.id=%(endpoint)s AND e.disabled IS NULL AND {_FREE} "
            "FOR UPDATE SKIP LOCKED) RETURNING id) "
            f"SELECT {DELIVERY_COLUMNS}, {EVENT_COLUMNS} FROM lane JOIN webhook_deliveries d "
            "ON d.endpoint_id=lane.id AND d.state=%(pending)s "
            "JOIN events ev ON ev.id=d.event_id ORDER BY d.id LIMIT %(limit)s",
            {"node": self._node, "lease": LANE_LEASE, "endpoint": endpoint_id,
             "pending": PENDING, "limit": limit})
        if not rows:
            # The lane ends here (nothing left, or another node holds it).
            await self._release(endpoint_id)
        return [_pending(r) for r in rows]

    async def _release(self, endpoint_id: int) -> None:
        await self.db.statement("UPDATE webhook_endpoints SET lane=NULL, lane_until=0 "
                                "WHERE id=%s AND lane=%s", (endpoint_id, self._node))

    async def webhook_backlog(self) -> dict[str, int]:
        # Counted off the partial index of pending rows: delivered and failed ones
        # (the log) may be many, and are not a backlog.
        row = await self.db.fetchone("SELECT count(*) FROM webhook_deliveries WHERE state=%s",
                                     (PENDING,))
        assert row is not None
        return {PENDING: row[0]}

    async def webhook_outcome(self, outcome: WebhookOutcome) -> None:
        o = outcome
        done = None if o.state == PENDING else o.when
        if not o.attempted:
            await self.db.statement(
                "UPDATE webhook_deliveries SET state=%s, last_error=%s, done=%s WHERE id=%s",
                (o.state, o.error, done, o.delivery_id))
            return
        # Both rows in one statement. A delivery left pending ends the lane (the
        # dispatcher tries it again after the pause, perhaps from another node);
        # otherwise the claim is renewed.
        await self.db.statement(
            "WITH d AS (UPDATE webhook_deliveries SET state=%(state)s, attempts=attempts+1, "
            "last_attempt=%(when)s, last_status=%(status)s, last_error=%(error)s, "
            "done=%(done)s WHERE id=%(delivery)s) "
            "UPDATE webhook_endpoints SET failures=%(failures)s, retry_at=%(retry_at)s, "
            "disabled=CASE WHEN %(disable)s THEN coalesce(disabled, %(when)s) "
            "ELSE disabled END, "
            "lane=CASE WHEN lane=%(node)s AND %(ends)s THEN NULL ELSE lane END, "
            "lane_until=CASE WHEN lane IS DISTINCT FROM %(node)s THEN lane_until "
            f"WHEN %(ends)s THEN 0 ELSE {_NOW} + %(lease)s END WHERE id=%(endpoint)s",
            {"state": o.state, "when": o.when, "status": o.status, "error": o.error,
             "done": done, "delivery": o.delivery_id, "failures": o.failures,
             "retry_at": o.retry_at, "disable": o.disable, "node": self._node,
             "ends": o.state == PENDING, "lease": LANE_LEASE, "endpoint": o.endpoint_id})
