"""Event rows: what events/log.py records for each step (see events/types.py)."""

from __future__ import annotations

from typing import Protocol


class EventStore(Protocol):
    def record_event(self, ts: float, type: str, session: str | None,
                     message_id: str | None, data: dict) -> None:
        """Queue an event row; written with the next batch, never blocking the caller."""
        ...

    def events(self, limit: int = 100) -> list[dict]:
        """The latest events, newest first (blocking read; async in phase 2)."""
        ...
