"""Event rows for PostgreSQL: queued in memory by record_event (which never waits) and
written in batches by one task on the pool's loop (eventwriter.py); searched, counted
and pruned through the indexes on (key, ts, id) and events_traffic (type, ts, domain,
role) of 0001_initial.sql, newest first by (ts, id), as store/sqlite/events.py does.

A read waits for the rows this store queued before it (a cheap check when none are
queued), so what a node recorded it also finds. Rows of several nodes are committed
in no particular ts order; ids are the identity's, unique across nodes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...events.log import EventRow
from ..events import Buckets, EventPage, EventQuery, Series, StoredEvent
from .db import Database
from .eventwriter import EventWriter

COLUMNS = "id, ts, type, session, message_id, address, domain, tag, data"


class PostgresEvents:
    db: Database

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._event_writer = EventWriter(self.db)

    def record_event(self, row: EventRow) -> None:
        self._event_writer.add(row)

    def flush_events(self) -> None:
        """Wait until every row queued so far is written (from a thread without a
        running loop: close, tests)."""
        self._event_writer.flush()

    def close(self) -> None:
        # The queued rows go in before the pool closes.
        self._event_writer.flush()
        super().close()                                    # type: ignore[misc]

    async def events(self, limit: int = 100) -> list[dict]:
        await self._event_writer.written()
        rows = await self.db.fetchall(
            "SELECT ts, type, session, message_id, data FROM events ORDER BY id DESC "
            "LIMIT %s", (limit,))
        return [dict(ts=t, type=ty, session=s, message_id=m, **d) for t, ty, s, m, d in rows]

    async def search_events(self, query: EventQuery) -> EventPage:
        await self._event_writer.written()
        where, args = _conditions(query)
        # One row more than asked for tells whether there is a next page.
        rows = await self.db.fetchall(
            f"SELECT {COLUMNS} FROM events {where} ORDER BY ts DESC, id DESC LIMIT %s",
            (*args, query.limit + 1))
        found = [StoredEvent(*row) for row in rows[:query.limit]]
        last = found[-1] if len(rows) > query.limit else None
        return EventPage(found, (last.ts, last.id) if last else None)

    async def count_events(self, series: Mapping[str, Series], buckets: Buckets,
                           domain: str | None = None) -> dict[str, tuple[int, ...]]:
        if buckets.count < 1:
            return {name: () for name in series}
        await self._event_writer.written()
        sql, args = count_sql(series, buckets, domain)
        rows = await self.db.fetchall(sql, args)
        columns = zip(*rows, strict=True)            # one per series, a count per bucket
        return {name: tuple(column) for name, column in zip(series, columns, strict=True)}

    async def top_values(self, type: str, field: str, since: float, until: float,
                         domain: str | None = None, limit: int = 10
                         ) -> list[tuple[str, int]]:
        await self._event_writer.written()
        where = "type=%s AND ts>=%s AND ts<%s" + (" AND domain=%s" if domain is not None
                                                  else "")
        # ->> gives the value as text (JSON null: NULL). COLLATE "C": ties in code point
        # order, as SQLite's BINARY orders them, whatever the database's collation.
        sql = (f"SELECT v, count(*) AS n FROM (SELECT data->>%s AS v FROM events "
               f"WHERE {where}) x WHERE v IS NOT NULL GROUP BY v "
               f'ORDER BY n DESC, v COLLATE "C" LIMIT %s')
        args = (field, type, since, until, *((domain,) if domain is not None else ()), limit)
        return [(v, n) for v, n in await self.db.fetchall(sql, args)]

    async def prune_events(self, before: float | None,
                           domains: Mapping[str, float | None], batch: int) -> int:
        # Each batch one DELETE in a transaction of its own, so no row lock is held long;
        # SKIP LOCKED: two nodes pruning at once share the work instead of queueing.
        # Other writers never wait for it (no single writer, unlike SQLite), so there
        # is no pause between batches.
        deleted = 0
        for domain, cutoff in domains.items():
            if cutoff is None:
                continue
            while True:
                n = await self.db.statement(
                    "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE domain=%s "
                    "AND ts<%s ORDER BY ts LIMIT %s FOR UPDATE SKIP LOCKED)",
                    (domain, cutoff, batch))
                deleted += n
                if n < batch:
                    break
        if before is None:
            return deleted
        # Every other row, along events_ts; the rows of the domains above that are older
        # than `before` stay and are passed over: each batch starts at the newest ts of
        # the one before instead of reading them again.
        names = list(domains)
        start = float("-inf")
        while True:
            rows = await self.db.fetchall(
                "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE ts>=%s AND ts<%s "
                "AND (domain IS NULL OR domain <> ALL(%s)) ORDER BY ts LIMIT %s "
                "FOR UPDATE SKIP LOCKED) RETURNING ts", (start, before, names, batch))
            deleted += len(rows)
            if len(rows) < batch:
                return deleted
            start = max(ts for (ts,) in rows)


def _conditions(q: EventQuery) -> tuple[str, tuple]:
    """The WHERE clause of a search: equality on the indexed keys, ranges on (ts, id)."""
    terms: list[str] = []
    args: list = []
    for column, value in (("message_id", q.message_id), ("address", q.address),
                          ("domain", q.domain), ("tag", q.tag)):
        if value is not None:
            terms.append(f"{column}=%s")
            args.append(value)
    if q.types:
        terms.append("type = ANY(%s)")
        args.append(list(q.types))
    if q.since is not None:
        terms.append("ts>=%s")
        args.append(q.since)
    if q.before is not None:
        # A row comparison: an index range of (key, ts, id).
        terms.append("(ts, id) < (%s, %s)")
        args += q.before
    if q.until is not None:
        terms.append("ts<%s")
        args.append(q.until)
    return ("WHERE " + " AND ".join(terms) if terms else ""), tuple(args)


def bucket_bounds(buckets: Buckets) -> tuple[list[float], list[float]]:
    """Each bucket's [lo, hi), computed as the SQLite backend's recursive query computes
    them (each bound the previous one plus step), so both count alike to the last bit."""
    lows, highs = [], []
    lo, hi = buckets.start, buckets.start + buckets.step
    for _ in range(buckets.count):
        lows.append(lo)
        highs.append(hi)
        lo, hi = hi, hi + buckets.step
    return lows, highs


def count_sql(series: Mapping[str, Series], buckets: Buckets,
              domain: str | None) -> tuple[str, list]:
    """count_events's query: one row per bucket, one correlated count per series in
    it, each a range of events_traffic (type, ts, domain, role)."""
    counts: list[str] = []
    args: list = []
    for s in series.values():
        terms = ["type=%s"]
        args.append(s.type)
        if s.roles:
            terms.append("role = ANY(%s)")
            args.append(list(s.roles))
        if domain is not None:
            terms.append("domain=%s")
            args.append(domain)
        counts.append(f"(SELECT count(*) FROM events WHERE {' AND '.join(terms)} "
                      "AND ts>=b.lo AND ts<b.hi)")
    args += bucket_bounds(buckets)
    sql = (f"SELECT {', '.join(counts)} FROM unnest(%s::float8[], %s::float8[]) "
           "WITH ORDINALITY AS b(lo, hi, i) ORDER BY b.i")
    return sql, args
