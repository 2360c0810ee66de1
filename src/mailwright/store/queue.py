"""The outbound queue: queued messages, their recipients' state, claims with leases.

The store keeps the state; the rules (when an attempt's outcome is final, when to
retry, when to give up) belong to the queue runner (queue/runner.py,
queue/states.py), which passes them in.

Every method is a coroutine: reads, claims, outcomes and the admin's changes.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class RemoteRecipient:
    address: str
    notify: str | None = None      # RFC 3461 NOTIFY=
    orcpt: str | None = None       # RFC 3461 ORCPT=


@dataclass(frozen=True)
class QueuedRecipient:
    id: int
    address: str
    notify: str | None
    orcpt: str | None
    state: str              # pending | deferred | delivered | bounced | held
    attempts: int
    next_attempt: float
    last_reply: str | None
    delay_warned: bool = False


@dataclass(frozen=True)
class QueuedMessage:
    id: int
    message_id: str
    mail_from: str
    blob: str
    size: int
    body: str | None
    smtputf8: bool
    ret: str | None
    envid: str | None
    created: float
    recipients: list[QueuedRecipient]
    tag: str | None = None  # the sender's label (HTTP API): on delivered/deferred/bounced
    sender_account: str | None = None  # the authenticated sender; None: not our user's


@dataclass(frozen=True)
class FinishedMessage:
    """A message that left the queue with every recipient final, its text kept for a
    while (queue_update with keep_finished) for an admin to read."""
    message_id: str
    mail_from: str
    blob: str
    size: int
    finished: float         # when its last recipient became final


@dataclass(frozen=True)
class RecipientUpdate:
    """The outcome of one delivery attempt for one queued recipient."""
    recipient_id: int
    state: str              # delivered | deferred | bounced
    reply: str
    next_attempt: float = 0.0
    delay_warned: bool = False
    address: str = ""
    remote: str = ""        # host [ip] that answered ("" when none was reached)
    tls: str = ""           # protocol and cipher used, "" for plaintext


class QueueStore(Protocol):
    # --- reads ----------------------------------------------------------------------------
    async def queue_messages(self) -> list[QueuedMessage]: ...
    async def queue_message(self, message_id: str) -> QueuedMessage | None: ...
    async def queue_attempts(self, message_id: str) -> list[dict]: ...
    async def queue_finished(self, message_id: str) -> FinishedMessage | None: ...

    async def queue_depth(self) -> dict[str, int]:
        """How many queued recipients are in each state (only states that have any):
        read at every metrics scrape, so one cheap aggregate, no rows."""
        ...

    # --- writes -------------------------------------------------------------------------
    async def queue_claim(self, now: float, limit: int, lease: float) -> list[QueuedMessage]:
        """Claim due recipients (pending/deferred, time come, not leased) for `lease`
        seconds; PostgreSQL: SELECT ... FOR UPDATE SKIP LOCKED."""
        ...

    async def queue_update(self, queue_id: int, updates: list[RecipientUpdate],
                           final: Collection[str], keep_finished: bool = False) -> bool:
        """Record attempt outcomes; in the same transaction, drop the message once
        every recipient's state is one of `final` (the runner's rule). True when the
        message left the queue. With `keep_finished` its text stays, as a
        FinishedMessage, until prune_finished removes it."""
        ...

    async def prune_finished(self, before: float, batch: int) -> int:
        """Remove the finished messages that became final before `before` (and their
        blobs, unless still referenced), at most `batch` per transaction; how many."""
        ...

    async def queue_release_leases(self) -> int:
        """At start-up, before any worker runs: claims of a crashed process lapse. A
        store shared by several nodes releases only this node's (store/postgresql/
        queue.py): another node's claims may be live, and lapse with their lease."""
        ...

    async def queue_set_state(self, message_id: str | None, state: str, now: float) -> int:
        """Admin: hold / release / retry (now) recipients of one message or all; returns count."""
        ...

    async def queue_delete(self, message_id: str) -> bool: ...
