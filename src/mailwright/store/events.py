"""Event rows: what events/log.py records for each step (see events/types.py), their
search and their pruning.

A search is data (EventQuery), its answer a page of rows (EventPage), newest first:
by ts, then id (rows of several worker processes are not committed in ts order), so
that each filter's index (address, domain, tag: each with ts) serves the order too. A
page continues after the (ts, id) of the previous page's last row. What a search may
ask for, and how old a row may grow before it goes, is decided above the store
(admin/events.py); the store matches and deletes exactly what it is told.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from ..events.log import EventSink


@dataclass(frozen=True)
class EventQuery:
    """Rows matching every given filter (None / empty: any). `address`, `domain` and
    `tag` compare with the row's indexed keys (events/log.py EventRow.of: lowercase)."""
    since: float | None = None             # ts >= since
    until: float | None = None             # ts < until
    types: tuple[str, ...] = ()            # any of these
    message_id: str | None = None
    address: str | None = None
    domain: str | None = None
    tag: str | None = None
    before: tuple[float, int] | None = None   # only rows older than this (ts, id)
    limit: int = 100


@dataclass(frozen=True)
class StoredEvent:
    id: int
    ts: float
    type: str
    session: str | None
    message_id: str | None
    address: str | None
    domain: str | None
    tag: str | None
    data: dict


@dataclass(frozen=True)
class Series:
    """Which rows one count takes: those of `type`, and when `roles` is given only
    those whose `role` key (events/log.py EventRow.of) is one of them."""
    type: str
    roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class Buckets:
    """`count` consecutive time ranges of `step` seconds from `start`; each holds the
    rows with start + i*step <= ts < start + (i+1)*step."""
    start: float
    step: int
    count: int


@dataclass(frozen=True)
class EventPage:
    events: list[StoredEvent]              # newest first
    next: tuple[float, int] | None         # `before` of the next page; None: no more


class EventStore(EventSink, Protocol):
    # record_event: events/log.py EventSink

    async def events(self, limit: int = 100) -> list[dict]:
        """The latest events, newest first."""
        ...

    async def search_events(self, query: EventQuery) -> EventPage:
        """One page of the rows matching `query`, newest first."""
        ...

    async def count_events(self, series: Mapping[str, Series], buckets: Buckets,
                           domain: str | None = None) -> dict[str, tuple[int, ...]]:
        """For each named series, how many of its rows fall in each bucket (zeros for
        empty ones), only of `domain` when one is given."""
        ...

    async def top_values(self, type: str, field: str, since: float, until: float,
                         domain: str | None = None, limit: int = 10
                         ) -> list[tuple[str, int]]:
        """The most frequent values of the data `field` among the rows of `type` with
        since <= ts < until (and of `domain`), with their counts: most frequent first,
        then by value; rows without the field are not counted."""
        ...

    async def prune_events(self, before: float | None,
                           domains: Mapping[str, float | None], batch: int) -> int:
        """Delete the rows older than their domain's cutoff: rows whose domain is a key
        of `domains` when older (ts <) than its value (None: never), every other row
        (no domain included) when older than `before` (None: never). At most `batch`
        rows per transaction, so no writer waits long. Returns how many went."""
        ...
