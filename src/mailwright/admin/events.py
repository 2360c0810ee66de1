"""The event log as an admin sees it: search (a page at a time), export (every matching
row, streamed as JSON Lines or CSV), prune (what is past [events] retention).

Filters are checked here (times, known event types, a limit of 1..1000) and given to the
store as an EventQuery; a page's `next` is an opaque cursor to pass back unchanged.
Rows come newest first. What is kept how long is [events]: retention_days, with
[events.domains."D"] overrides per domain, and message_retention_days for the text of
finished outbound messages (admin/queue.py raw).
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import math
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, replace

from ..address import AddressError, parse_mailbox
from ..events.types import Event
from ..store.events import EventQuery, StoredEvent
from . import validate
from .context import Context
from .errors import Invalid

MAX_LIMIT = 1000
EXPORT_PAGE = 1000         # rows per store read while exporting (memory stays bounded)
FORMATS = ("jsonl", "csv")
COLUMNS = ("id", "ts", "type", "session", "message_id", "address", "domain", "tag", "data")
DAY = 86400.0
KNOWN_TYPES = tuple(sorted(e.value for e in Event))


@dataclass(frozen=True)
class SearchPage:
    events: list[StoredEvent]      # newest first
    next: str | None               # cursor of the next page; None: this is the last


@dataclass(frozen=True)
class Pruned:
    events: int                    # event rows past their domain's retention
    messages: int                  # finished messages past message_retention_days


class Events:
    def __init__(self, ctx: Context):
        self.store = ctx.store
        self.settings = ctx.config.events
        self.clock = ctx.clock

    async def search(self, *, since: str | float | None = None,
                     until: str | float | None = None,
                     types: Iterable[str] | str | None = None, message_id: str | None = None,
                     address: str | None = None, domain: str | None = None,
                     tag: str | None = None, limit: int = 100,
                     cursor: str | None = None) -> SearchPage:
        """One page of the events matching every filter given: `since` (inclusive) and
        `until` (exclusive) as epoch seconds or ISO 8601, `types` names (a list, or
        comma-separated), the rest compared exactly (address and domain in their
        canonical form, case-insensitively)."""
        if type(limit) is not int or not 1 <= limit <= MAX_LIMIT:
            raise Invalid(f"invalid limit {limit!r}: expected 1 to {MAX_LIMIT}")
        query = _query(since, until, types, message_id, address, domain, tag)
        page = await self.store.search_events(replace(query, limit=limit,
                                                      before=_decode(cursor)))
        return SearchPage(page.events, _encode(page.next) if page.next else None)

    async def export(self, *, format: str = "jsonl", since: str | float | None = None,
                     until: str | float | None = None,
                     types: Iterable[str] | str | None = None, message_id: str | None = None,
                     address: str | None = None, domain: str | None = None,
                     tag: str | None = None) -> AsyncIterator[str]:
        """Every matching event, newest first, as text chunks (a page of rows each):
        `jsonl` one JSON object per line, `csv` a header line and RFC 4180 rows with
        `data` as JSON. The filters are checked before this returns, so a refusal
        comes before the first chunk."""
        if format not in FORMATS:
            raise Invalid(f"unknown export format {format!r}: expected one of "
                          f"{', '.join(FORMATS)}")
        query = _query(since, until, types, message_id, address, domain, tag)
        return self._chunks(query, _jsonl if format == "jsonl" else _csv)

    async def prune(self, now: float | None = None) -> Pruned:
        """Delete what is past its policy as of `now` (default: the clock): events older
        than their domain's retention (a domain with an override, its own; every other
        event, the default; None: kept), and finished messages older than
        message_retention_days."""
        s = self.settings
        now = self.clock() if now is None else now

        def cutoff(days: int | None) -> float | None:
            return None if days is None else now - days * DAY
        events = await self.store.prune_events(
            cutoff(s.retention_days), {domain: cutoff(days) for domain, days in s.domains},
            s.prune_batch)
        messages = await self.store.prune_finished(now - s.message_retention_days * DAY,
                                                   s.prune_batch)
        return Pruned(events, messages)

    async def _chunks(self, query: EventQuery, render) -> AsyncIterator[str]:
        before = None
        first = True
        while True:
            page = await self.store.search_events(replace(query, limit=EXPORT_PAGE,
                                                          before=before))
            if text := render(page.events, first):
                yield text
            if page.next is None:
                return
            before, first = page.next, False


def _query(since, until, types, message_id, address, domain, tag) -> EventQuery:
    start, end = validate.timestamp("since", since), validate.timestamp("until", until)
    if start is not None and end is not None and start >= end:
        raise Invalid("since must be before until")
    return EventQuery(since=start, until=end, types=_types(types),
                      message_id=_text("message ID", message_id),
                      address=_address(address),
                      domain=validate.domain(domain) if domain is not None else None,
                      tag=_text("tag", tag))


def _types(given: Iterable[str] | str | None) -> tuple[str, ...]:
    if given is None:
        return ()
    names = [n.strip().lower() for item in ([given] if isinstance(given, str) else given)
             for n in item.split(",") if n.strip()]
    for name in names:
        if name not in KNOWN_TYPES:
            raise Invalid(f"unknown event type {name!r}; known types: {', '.join(KNOWN_TYPES)}")
    return tuple(dict.fromkeys(names))


def _text(what: str, value: str | None) -> str | None:
    if value is None:
        return None
    if not value.strip():
        raise Invalid(f"empty {what}")
    return value.strip()


def _address(value: str | None) -> str | None:
    """As event rows keep it (events/log.py): lowercase, the domain an A-label. A login
    name that is not an address (auth-fail) is matched as given, lowercased."""
    text = _text("address", value)
    if text is None:
        return None
    try:
        return str(parse_mailbox(text)).lower()
    except AddressError:
        return text.lower()


# The cursor is the (ts, id) of a page's last row. Opaque to clients, so that how a page
# continues may change without their knowing.
def _encode(key: tuple[float, int]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def _decode(cursor: str | None) -> tuple[float, int] | None:
    if cursor is None:
        return None
    try:
        ts, event_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        # An id is a SQLite rowid, 1 to 2**63 - 1: a larger one could not even be bound.
        if type(event_id) is not int or not 0 < event_id < 2**63 \
                or type(ts) not in (int, float) or not math.isfinite(ts):
            raise ValueError
        return float(ts), event_id
    except (ValueError, TypeError, binascii.Error):
        raise Invalid("invalid cursor: pass the `next` of a previous page unchanged") from None


def _row(e: StoredEvent) -> dict:
    return {c: getattr(e, c) for c in COLUMNS}


def _jsonl(events: list[StoredEvent], first: bool) -> str:
    return "".join(json.dumps(_row(e), ensure_ascii=False) + "\n" for e in events)


def _csv(events: list[StoredEvent], first: bool) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    if first:
        writer.writerow(COLUMNS)
    for e in events:
        row = _row(e)
        row["data"] = json.dumps(e.data, ensure_ascii=False)
        writer.writerow(["" if v is None else v for v in row.values()])
    return out.getvalue()
