"""Event rows for SQLite: written with the writer's next batch, never a job of
their own."""

from __future__ import annotations

import json
import sqlite3

from ...events.log import EventRow


class SQLiteEvents:
    conn: sqlite3.Connection

    def record_event(self, row: EventRow) -> None:
        self._writer.add_event((row.ts, row.type, row.session, row.message_id, row.address,
                                row.domain, row.tag, json.dumps(row.data, default=str)))

    async def events(self, limit: int = 100) -> list[dict]:
        rows = self.conn.execute(
            "SELECT ts, type, session, message_id, data FROM events ORDER BY id DESC LIMIT ?",
            (limit,))
        return [dict(ts=t, type=ty, session=s, message_id=m, **json.loads(d))
                for t, ty, s, m, d in rows]
