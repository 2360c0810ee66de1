"""Event rows: what events/log.py records for each step (see events/types.py)."""

from __future__ import annotations

from typing import Protocol

from ..events.log import EventSink


class EventStore(EventSink, Protocol):
    # record_event: events/log.py EventSink

    async def events(self, limit: int = 100) -> list[dict]:
        """The latest events, newest first."""
        ...
