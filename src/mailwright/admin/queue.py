"""The outbound queue as an admin sees it: list, show, raw, hold, release, retry, flush,
delete. Delivery itself is queue/runner.py's; a running server picks up what is
made due here within [queue] interval."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

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


class Queue:
    def __init__(self, ctx: Context):
        self.store = ctx.store
        self.clock = ctx.clock

    async def list(self) -> QueueOverview:
        return QueueOverview.of(await self.store.queue_messages())

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
        return Rescheduled(await self.store.queue_set_state(target, state, self.clock()), state)
