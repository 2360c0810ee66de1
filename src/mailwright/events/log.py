"""Events: one structured log line and one row in the event table per step.

Never passwords, never message bodies: callers pass only envelope facts,
sizes, codes and identifiers. Every event type and its fields are declared in
events/types.py (docs/EVENTS.md); `EventLog.emit` is the one way to record one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from .types import Event, check_fields

log = logging.getLogger("mailwright.events")


def _fmt(value: Any) -> str:
    text = str(value)
    if not text or any(c in text for c in ' ="\\') or not text.isprintable():
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


# The fields naming the address an event is about, most telling first: the recipient
# of a delivery, the authenticated account, the sender, a login name, a DSN's recipient.
ADDRESS_FIELDS = ("rcpt", "account", "mail_from", "username", "to")


@dataclass(frozen=True)
class EventRow:
    """One event as stored. `address`, `domain` and `tag` are the indexed keys that
    search and per-domain retention use, `role` the one traffic statistics split
    `accepted` by (admin/stats.py), taken from `data` by EventRow.of."""
    ts: float
    type: str
    session: str | None
    message_id: str | None
    address: str | None        # the first of ADDRESS_FIELDS that is set
    domain: str | None         # the `domain` field, else the address's domain
    tag: str | None            # the `tag` field (messages sent with a tag or campaign)
    data: dict
    role: str | None = None    # the `role` field (the listener's: mx, submission, ...)

    @classmethod
    def of(cls, ts: float, type: str, session: str | None, message_id: str | None,
           data: dict) -> EventRow:
        address = next((str(data[f]) for f in ADDRESS_FIELDS if data.get(f)), None)
        domain = data.get("domain") or (address.rpartition("@")[2] if address and "@" in address
                                        else None)
        return cls(ts, type, session, message_id, address.lower() if address else None,
                   domain.lower() if domain else None, data.get("tag") or None, data,
                   data.get("role") or None)


class EventSink(Protocol):
    """Where event rows go (the store implements it: store/events.py). Declared here,
    so events/ sits below the store and imports nothing of it."""

    def record_event(self, row: EventRow) -> None:
        """Queue an event row; written with the next batch, never blocking the caller."""
        ...


# Called after each event is recorded, with (event, session, message_id, data): how
# metrics/ counts without a call of its own at every step. It runs on every emit, on
# the caller's thread, so it must be cheap; it must not change `data` (the stored row's).
Observer = Callable[[Event, str | None, str | None, dict[str, Any]], None]


class EventLog:
    def __init__(self, store: EventSink | None, observers: Iterable[Observer] = ()):
        self.store = store
        self.observers = list(observers)

    def emit(self, event: Event, session: str | None = None, message_id: str | None = None,
             **data: Any) -> None:
        if not isinstance(event, Event):
            raise TypeError(f"event types come from events.types.Event, not {event!r}")
        check_fields(event, data.keys())
        # An optional field given as None is one the emitting step does not know: left
        # out, as if not given (a message without a tag has no `tag=`).
        data = {k: v for k, v in data.items() if v is not None or k in event.needed}
        name = event.value
        if log.isEnabledFor(logging.INFO):
            parts = [f"event={name}"]
            if session:
                parts.append(f"session={session}")
            if message_id:
                parts.append(f"msgid={message_id}")
            parts += [f"{k}={_fmt(v)}" for k, v in data.items()]
            log.info(" ".join(parts))
        if self.store is not None:
            self.store.record_event(EventRow.of(time.time(), name, session, message_id, data))
        for observe in self.observers:
            try:
                observe(event, session, message_id, data)
            except Exception:  # counting must never fail the step that was counted
                log.exception("event observer %r failed on %s", observe, name)
