"""The background pruner: admin.events.prune every [events] prune_interval, in the
primary worker only (app.py), so that several workers never prune at once."""

from __future__ import annotations

import asyncio
import logging

from ..events.log import EventLog
from ..events.types import Event
from .events import Events

log = logging.getLogger("mailwright")


async def prune_periodically(events: Events, event_log: EventLog) -> None:
    """Prune now, then every prune_interval seconds, until cancelled. A failed run (the
    disk full, the database busy past its timeout) is logged and tried again next
    time: the task never ends on one."""
    while True:
        try:
            done = await events.prune()
        except Exception as e:
            log.error("pruning events and finished messages failed: %s", e)
        else:
            if done.events or done.messages:
                event_log.emit(Event.EVENTS_PRUNED, events=done.events,
                               messages=done.messages)
        await asyncio.sleep(events.settings.prune_interval)
