"""Event rows for SQLite: written with the writer's next batch, never a job of
their own; searched and pruned through the indexes on ts, address, domain, message_id
and tag (schema.py), newest first by (ts, id); counted for statistics per time bucket
through events_traffic (type, ts, domain, role).

Searches and the pruner's scans may read many rows (a rare type over a long time, old
rows kept for a domain): they run in a thread on a connection of their own, never on
the loop's. The pruner deletes what it found in jobs of at most `batch` rows, so the
writer's transaction, and with it every delivery waiting to commit, stays short, and
pauses between jobs, so that deliveries get most of the writer while it works through a
backlog. A row never changes once written, so rows found past a cutoff are still past
it when the job deletes them.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from ...events.log import EventRow
from ..events import Buckets, EventPage, EventQuery, Series, StoredEvent
from .db import connect

T = TypeVar("T")
# After each delete job the pruner waits this many times as long as the job took, so it
# has the writer at most 1/(1 + PRUNE_PAUSE) of the time while a backlog lasts. A delete
# is costly: every row's entry in each index is on a page of its own (the address index
# above all, in another order than ts), ~70 ms per 1000 rows with the commit. Measured
# with bench/event_prune.py (1M old events, SMTP accept at full load, 2-core VM): no pause
# 0.33x the accept rate of a server not pruning, a pause of 1x 0.51x, of 4x 0.83x.
PRUNE_PAUSE = 4.0
COLUMNS = "id, ts, type, session, message_id, address, domain, tag, data"


class SQLiteEvents:
    conn: sqlite3.Connection
    db_path: Path
    _writer: Any
    _write: Any

    def record_event(self, row: EventRow) -> None:
        self._writer.add_event((row.ts, row.type, row.session, row.message_id, row.address,
                                row.domain, row.tag, json.dumps(row.data, default=str),
                                row.role))

    async def events(self, limit: int = 100) -> list[dict]:
        rows = self.conn.execute(
            "SELECT ts, type, session, message_id, data FROM events ORDER BY id DESC LIMIT ?",
            (limit,))
        return [dict(ts=t, type=ty, session=s, message_id=m, **json.loads(d))
                for t, ty, s, m, d in rows]

    async def search_events(self, query: EventQuery) -> EventPage:
        where, args = _conditions(query)
        sql = f"SELECT {COLUMNS} FROM events {where} ORDER BY ts DESC, id DESC LIMIT ?"
        # One row more than asked for tells whether there is a next page.
        rows = await self._read(lambda c: c.execute(sql, (*args, query.limit + 1)).fetchall())
        found = [StoredEvent(*row[:8], json.loads(row[8])) for row in rows[:query.limit]]
        last = found[-1] if len(rows) > query.limit else None
        return EventPage(found, (last.ts, last.id) if last else None)

    async def count_events(self, series: Mapping[str, Series], buckets: Buckets,
                           domain: str | None = None) -> dict[str, tuple[int, ...]]:
        if buckets.count < 1:
            return {name: () for name in series}
        sql, args = count_sql(series, buckets, domain)
        rows = await self._read(lambda c: c.execute(sql, args).fetchall())
        columns = zip(*rows, strict=True)            # one per series, a count per bucket
        return {name: tuple(column) for name, column in zip(series, columns, strict=True)}

    async def top_values(self, type: str, field: str, since: float, until: float,
                         domain: str | None = None, limit: int = 10
                         ) -> list[tuple[str, int]]:
        # The field is in the JSON data: these rows are read from the table, found by
        # the events_traffic range of (type, ts).
        where = "type=? AND ts>=? AND ts<?" + (" AND domain=?" if domain is not None else "")
        path = '$."' + field.replace('"', '') + '"'
        sql = (f"SELECT v, count(*) AS n FROM (SELECT json_extract(data, ?) AS v FROM events "
               f"WHERE {where}) WHERE v IS NOT NULL GROUP BY v ORDER BY n DESC, v LIMIT ?")
        args = (path, type, since, until, *((domain,) if domain is not None else ()), limit)
        rows = await self._read(lambda c: c.execute(sql, args).fetchall())
        return [(str(v), n) for v, n in rows]

    async def prune_events(self, before: float | None,
                           domains: Mapping[str, float | None], batch: int) -> int:
        deleted = 0
        # Each domain with its own cutoff: a range of events_domain (domain, ts). What
        # is deleted leaves the front of the range, so each scan starts on rows to go.
        for domain, cutoff in domains.items():
            if cutoff is None:
                continue
            while True:
                ids = await self._read(lambda c, d=domain, t=cutoff: [r[0] for r in c.execute(
                    "SELECT id FROM events WHERE domain=? AND ts<? ORDER BY ts LIMIT ?",
                    (d, t, batch))])
                deleted += await self._delete_events(ids)
                if len(ids) < batch:
                    break
        if before is None:
            return deleted
        # Every other row, along events_ts. Rows of the domains above that are older
        # than `before` stay and are passed over: the scan goes on from the newest ts
        # of the previous batch instead of reading them again each time.
        names = list(domains)
        others = f"AND (domain IS NULL OR domain NOT IN ({','.join('?' * len(names))}))" \
            if names else ""
        start = float("-inf")
        while True:
            rows = await self._read(lambda c, s=start: c.execute(
                f"SELECT id, ts FROM events WHERE ts>=? AND ts<? {others} ORDER BY ts LIMIT ?",
                (s, before, *names, batch)).fetchall())
            deleted += await self._delete_events([r[0] for r in rows])
            if len(rows) < batch:
                return deleted
            start = rows[-1][1]

    async def _delete_events(self, ids: list[int]) -> int:
        if not ids:
            return 0
        started = time.monotonic()
        # rowcount: what this job removed (a concurrent prune may have taken some).
        deleted = await self._write(lambda c: c.executemany(
            "DELETE FROM events WHERE id=?", [(i,) for i in ids]).rowcount)
        await asyncio.sleep((time.monotonic() - started) * PRUNE_PAUSE)
        return deleted

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """fn(connection) in a thread, on a connection of its own (a WAL reader: it
        never waits for the writer, nor the writer for it)."""
        def run() -> T:
            conn = connect(self.db_path)
            try:
                return fn(conn)
            finally:
                conn.close()
        return await asyncio.to_thread(run)


def _conditions(q: EventQuery) -> tuple[str, tuple]:
    """The WHERE clause of a search: equality on the indexed keys, ranges on ts; SQLite
    picks the index of the most selective key, each ordered by ts as the result is."""
    terms: list[str] = []
    args: list = []
    for column, value in (("message_id", q.message_id), ("address", q.address),
                          ("domain", q.domain), ("tag", q.tag)):
        if value is not None:
            terms.append(f"{column}=?")
            args.append(value)
    if q.types:
        terms.append(f"type IN ({','.join('?' * len(q.types))})")
        args += q.types
    if q.since is not None:
        terms.append("ts>=?")
        args.append(q.since)
    # A row value range, which SQLite reads as a range of ts on the index (SQLite
    # 3.15). It implies `until` when below it: left out then, or SQLite may take the
    # wider of the two ranges and scan from `until` down to the cursor on every page.
    if q.before is not None:
        terms.append("(ts, id) < (?, ?)")
        args += q.before
    if q.until is not None and (q.before is None or q.before[0] >= q.until):
        terms.append("ts<?")
        args.append(q.until)
    return ("WHERE " + " AND ".join(terms) if terms else ""), tuple(args)


def count_sql(series: Mapping[str, Series], buckets: Buckets,
              domain: str | None) -> tuple[str, list]:
    """count_events's query: one row per bucket (a recursive CTE of its bounds), one
    correlated count per series in it. Each count is a range of the events_traffic
    index (type, ts, domain, role), read from the index alone; a GROUP BY over a bucket
    expression would sort every matching row first instead (~6x slower at 1M events)."""
    counts, args = [], [buckets.start, buckets.start, buckets.step, buckets.step,
                        buckets.count]
    for s in series.values():
        terms = ["type=?"]
        args.append(s.type)
        if s.roles:
            terms.append(f"role IN ({','.join('?' * len(s.roles))})")
            args += s.roles
        if domain is not None:
            terms.append("domain=?")
            args.append(domain)
        counts.append(f"(SELECT count(*) FROM events WHERE {' AND '.join(terms)} "
                      "AND ts>=b.lo AND ts<b.hi)")
    sql = ("WITH RECURSIVE b(i, lo, hi) AS (SELECT 0, ?, ? + ? UNION ALL "
           "SELECT i + 1, hi, hi + ? FROM b WHERE i + 1 < ?) "
           f"SELECT {', '.join(counts)} FROM b ORDER BY i")
    return sql, args
