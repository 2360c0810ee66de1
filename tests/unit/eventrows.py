"""Event rows in store tests on either backend: record_event queues a row and returns;
written(store) waits until what was queued is in the database."""

from __future__ import annotations

import asyncio

from mailwright.events.log import EventRow
from mailwright.store.events import EventQuery


def written(store) -> None:
    """Every row recorded so far is stored: SQLite writes them with the writer's next
    batch (an empty job makes one), PostgreSQL with its event writer's."""
    if hasattr(store, "flush_events"):
        store.flush_events()
    else:
        asyncio.run(store._write(lambda c: None))


def record(store, rows: list[EventRow]) -> list[int]:
    """Write rows as the event log does; their ids, in the order given (ids grow in the
    order rows are recorded on both backends)."""
    before = set(event_ids(store))
    for row in rows:
        store.record_event(row)
    written(store)
    new = sorted(set(event_ids(store)) - before)
    assert len(new) == len(rows)
    return new


def event_ids(store) -> list[int]:
    """The ids of every stored row, newest first."""
    page = asyncio.run(store.search_events(EventQuery(limit=1_000_000)))
    return [e.id for e in page.events]
