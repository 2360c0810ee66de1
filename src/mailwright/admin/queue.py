"""The outbound queue as an admin sees it: list, show, raw, hold, release, retry, flush,
bounce, delete. Delivery itself is queue/runner.py's; a running server picks up what
is made due here within [queue] interval."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ..queue import states
from ..queue.runner import QueueRunner
from ..store.queue import QueuedMessage
from .context import Context
from .errors import Invalid, NotFound

HELD, PENDING = "held", "pending"


@dataclass(frozen=True)
class QueueOverview:
    messages: list[QueuedMessage]
    by_state: dict[str, int]               # recipients per state, by state name
    by_destination: list[tuple[str, int]]  # recipients per domain, most first

    @classmethod
    def of(cls, messages: list[QueuedMessage]) -> QueueOverview:
        states: Counter[str] = Counter()
        domains: Counter[str] = Counter()
        for m in messages:
            for r in m.recipients:
                states[r.state] += 1
                domains[r.address.rpartition("@")[2]] += 1
        return cls(messages, dict(sorted(states.items())), domains.most_common())


@dataclass(frozen=True)
class Attempt:
    ts: float
    address: str
    remote: str            # host [ip] that answered, "" when none was reached
    tls: str | None        # protocol/cipher; "" or None for plaintext
    reply: str


@dataclass(frozen=True)
class QueueEntry:
    message: QueuedMessage
    attempts: list[Attempt]


@dataclass(frozen=True)
class MessageText:
    message_id: str
    mail_from: str         # '' for the null reverse-path
    size: int
    finished: float | None  # when its last recipient became final; None: still queued
    content: bytes         # as relayed (RFC 5322 text, CRLF line ends)


@dataclass(frozen=True)
class Rescheduled:
    recipients: int        # how many recipients changed
    state: str             # held, or pending (due now)


@dataclass(frozen=True)
class QueueFilter:
    """Which queued messages a listing shows; None: any."""
    state: str | None = None                   # a recipient in this state
    sender: str | None = None                  # the envelope sender, exactly
    recipient_domain: str | None = None        # a recipient in this domain
    sender_domains: frozenset[str] | None = None   # the sender's domain is one of these

    def matches(self, m: QueuedMessage) -> bool:
        if self.sender is not None and m.mail_from.lower() != self.sender.lower():
            return False
        if self.sender_domains is not None and \
                m.mail_from.rpartition("@")[2].lower() not in self.sender_domains:
            return False
        return any((self.state is None or r.state == self.state)
                   and (self.recipient_domain is None
                        or r.address.rpartition("@")[2].lower() == self.recipient_domain)
                   for r in m.recipients)


STATES = states.ALL
ADMIN_BOUNCE = "550 5.0.0 Returned to the sender by the mail administrator"


class Queue:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.store = ctx.store
        self.clock = ctx.clock

    async def list(self, where: QueueFilter = QueueFilter(), limit: int | None = None
                   ) -> QueueOverview:
        if where.state is not None and where.state not in STATES:
            raise Invalid(f"unknown queue state {where.state!r}: one of {', '.join(STATES)}")
        chosen = [m for m in await self.store.queue_messages() if where.matches(m)]
        return QueueOverview.of(chosen[:limit] if limit else chosen)

    async def show(self, message_id: str) -> QueueEntry:
        m = await self.store.queue_message(message_id)
        if m is None:
            raise NotFound(f"no queued message {message_id} (see: mailwright queue list)")
        attempts = await self.store.queue_attempts(message_id)
        return QueueEntry(m, [Attempt(**a) for a in attempts])

    async def raw(self, message_id: str) -> MessageText:
        """The text of a queued message, or of a finished one (every recipient delivered
        or bounced) for [events] message_retention_days after it finished."""
        queued = await self.store.queue_message(message_id)
        found = queued or await self.store.queue_finished(message_id)
        if found is None:
            raise NotFound(f"no queued message {message_id}, nor a finished one kept "
                           "([events] message_retention_days)")
        try:
            content = await self.store.read_blob(found.blob)
        except FileNotFoundError:       # finished and pruned since it was looked up
            raise NotFound(f"message {message_id} was removed meanwhile") from None
        return MessageText(found.message_id, found.mail_from, found.size,
                           None if queued else found.finished, content)

    async def hold(self, message_id: str | None = None, *,
                  all_messages: bool = False) -> Rescheduled:
        """Stop delivery attempts for pending and deferred recipients."""
        return await self._set(HELD, "hold", message_id, all_messages)

    async def release(self, message_id: str | None = None, *,
                     all_messages: bool = False) -> Rescheduled:
        """Held (and waiting) recipients become due now."""
        return await self._set(PENDING, "release", message_id, all_messages)

    async def retry(self, message_id: str | None = None, *,
                   all_messages: bool = False) -> Rescheduled:
        """Waiting (and held) recipients become due now."""
        return await self._set(PENDING, "retry", message_id, all_messages)

    async def flush(self) -> Rescheduled:
        """Every waiting or held recipient becomes due now."""
        return await self._set(PENDING, "flush", None, True)

    async def bounce(self, message_id: str) -> Rescheduled:
        """Give up on a message now: its waiting recipients bounce, with a DSN to the
        sender, as if delivery had failed for good."""
        if await self.store.queue_message(message_id) is None:
            raise NotFound(f"no queued message {message_id}")
        runner = QueueRunner(self.ctx.config, self.store, self.ctx.resolver, self.ctx.events,
                             clock=self.clock)
        return Rescheduled(await runner.bounce(message_id, ADMIN_BOUNCE), "bounced")

    async def delete(self, message_id: str) -> str:
        """Drop a message from the queue without a bounce."""
        if not await self.store.queue_delete(message_id):
            raise NotFound(f"no queued message {message_id}")
        return message_id

    async def _set(self, state: str, action: str, message_id: str | None,
             all_messages: bool) -> Rescheduled:
        # Everything only when asked for in so many words, never by a missing ID.
        if message_id is None and not all_messages:
            raise Invalid(f"queue {action} needs a message ID or --all")
        target = None if all_messages else message_id
        # A message that is not queued (never was, or delivered and gone) is not there,
        # rather than one with nothing to change.
        if target is not None and await self.store.queue_message(target) is None:
            raise NotFound(f"no queued message {target} (see: mailwright queue list)")
        return Rescheduled(await self.store.queue_set_state(target, state, self.clock()), state)
