"""Webhooks as the store keeps them: endpoints, and the durable outbox of deliveries.

Fan-out happens where events are stored: each event row puts one pending delivery
into the outbox of every enabled endpoint it matches (its type in the endpoint's list
or "*"; for an endpoint of one domain, an event of that domain), in the same
transaction as the event. The rules of sending (signing, backoff, giving up,
disabling) are webhooks/'s, which passes its decisions in as WebhookOutcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .events import StoredEvent

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"              # given up (max_age)
STATES = (PENDING, DELIVERED, FAILED)
ALL_EVENTS = "*"



# The columns of each dataclass below, in its fields' order, as both backends select
# them (endpoints as `e`, deliveries as `d`, their events as `ev`).
ENDPOINT_COLUMNS = "e.id, e.url, e.domain, e.events, e.secret, e.created, e.disabled, " \
                   "e.failures, e.retry_at"
DELIVERY_COLUMNS = "d.id, d.endpoint_id, d.event_id, ev.type, d.state, d.queued, " \
                   "d.attempts, d.last_attempt, d.last_status, d.last_error, d.done"
EVENT_COLUMNS = "ev.id, ev.ts, ev.type, ev.session, ev.message_id, ev.address, ev.domain, " \
                "ev.tag, ev.data"


@dataclass(frozen=True)
class WebhookEndpoint:
    id: int
    url: str
    domain: str | None           # canonical; None: the events of every domain
    events: tuple[str, ...]      # event types, sorted; ("*",) for all
    secret: str
    created: float
    disabled: float | None       # when it was disabled; None: enabled
    failures: int                # consecutive failed attempts
    retry_at: float              # paused until (0: not paused)


@dataclass(frozen=True)
class WebhookDelivery:
    """One event for one endpoint: a row of the outbox and of the delivery log."""
    id: int                      # never reused: the receiver's deduplication key
    endpoint_id: int
    event_id: int
    event_type: str
    state: str                   # pending | delivered | failed
    queued: float                # made or redelivered; max_age counts from here
    attempts: int
    last_attempt: float | None
    last_status: int | None      # the HTTP status of the last answer, None if none came
    last_error: str | None
    done: float | None           # delivered or given up at


@dataclass(frozen=True)
class PendingWebhook:
    delivery: WebhookDelivery
    event: StoredEvent          # the event it carries, as the events table holds it


@dataclass(frozen=True)
class WebhookOutcome:
    """What became of one pending delivery, and of its endpoint."""
    delivery_id: int
    endpoint_id: int
    state: str                   # delivered | pending (tried again later) | failed
    when: float
    attempted: bool = True       # False: given up unsent (too old); the endpoint is unchanged
    status: int | None = None    # the HTTP status answered
    error: str | None = None
    failures: int = 0            # the endpoint's consecutive failures from now on
    retry_at: float = 0.0        # the endpoint waits until then
    disable: bool = False        # the endpoint is disabled as of `when`


class WebhookStore(Protocol):
    # --- endpoints (the admin's) ---------------------------------------------------------
    async def add_webhook(self, url: str, domain: str | None, events: tuple[str, ...],
                          secret: str, created: float) -> WebhookEndpoint:
        ...

    async def webhooks(self, domain: str | None = None) -> list[WebhookEndpoint]:
        """Every endpoint, oldest first; with `domain`, only that domain's own."""
        ...

    async def webhook(self, endpoint_id: int) -> WebhookEndpoint | None: ...

    async def remove_webhook(self, endpoint_id: int) -> bool:
        """Remove the endpoint with its outbox and delivery log; False: no such endpoint."""
        ...

    async def set_webhook_disabled(self, endpoint_id: int, when: float | None
                                   ) -> WebhookEndpoint | None:
        """Disable the endpoint as of `when`, or enable it (None): enabling also ends
        its failure count and pause."""
        ...

    # --- the delivery log --------------------------------------------------------------
    async def webhook_deliveries(self, endpoint_id: int, limit: int,
                                 before: int | None = None, state: str | None = None
                                 ) -> list[WebhookDelivery]:
        """The endpoint's deliveries, newest first: up to `limit` with ids below
        `before`, of one state if given."""
        ...

    async def webhook_delivery(self, delivery_id: int) -> WebhookDelivery | None: ...

    async def redeliver_webhook(self, delivery_id: int, when: float) -> WebhookDelivery | None:
        """Make a delivered or failed delivery pending again, queued as of `when`."""
        ...

    # --- the dispatcher's ----------------------------------------------------------------
    async def webhooks_due(self, now: float) -> tuple[list[WebhookEndpoint], float | None]:
        """Enabled endpoints with pending deliveries that may be sent to now, and the
        earliest time a paused one may be (None: none is paused)."""
        ...

    async def webhook_pending(self, endpoint_id: int, limit: int) -> list[PendingWebhook]:
        """The endpoint's pending deliveries with their events, oldest first; none while
        the endpoint is disabled."""
        ...

    async def webhook_outcome(self, outcome: WebhookOutcome) -> None: ...

    async def webhook_backlog(self) -> dict[str, int]:
        """Deliveries not yet made, {"pending": n}: the /metrics backlog gauge."""
        ...
