"""Event rows for SQLite: written with the writer's next batch, never a job of
their own."""

from __future__ import annotations

import json
import sqlite3


class SQLiteEvents:
    conn: sqlite3.Connection

    def record_event(self, ts: float, type: str, session: str | None,
                     message_id: str | None, data: dict) -> None:
        self._writer.add_event((ts, type, session, message_id, json.dumps(data, default=str)))

    async def events(self, limit: int = 100) -> list[dict]:
        rows = self.conn.execute(
            "SELECT ts, type, session, message_id, data FROM events ORDER BY id DESC LIMIT ?",
            (limit,))
        return [dict(ts=t, type=ty, session=s, message_id=m, **json.loads(d))
                for t, ty, s, m, d in rows]
