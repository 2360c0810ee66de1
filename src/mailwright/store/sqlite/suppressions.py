"""The suppression list for SQLite (store/suppressions.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from typing import Any

from ..suppressions import SuppressionRecord

_COLUMNS = "id, domain, address, lookup, campaign, reason, source, created"
# The unique index is over ifnull(campaign, ''): NULLs are distinct in a UNIQUE key.
_ENTRY = "domain=? AND lookup=? AND ifnull(campaign, '')=ifnull(?, '')"
# SQLite's default limit on host parameters is 32766 (999 before 3.32): a message's
# recipients are looked up in slices well below either.
_SLICE = 500


class SQLiteSuppressions:
    conn: sqlite3.Connection
    _write: Any

    async def add_suppression(self, domain: str, address: str, lookup: str,
                              campaign: str | None, reason: str, source: str,
                              created: float) -> tuple[SuppressionRecord, bool]:
        def job(c: sqlite3.Connection) -> tuple[tuple, bool]:
            added = c.execute(
                "INSERT OR IGNORE INTO suppressions (domain, address, lookup, campaign, "
                "reason, source, created) VALUES (?,?,?,?,?,?,?)",
                (domain, address, lookup, campaign, reason, source, created)).rowcount > 0
            row = c.execute(f"SELECT {_COLUMNS} FROM suppressions WHERE {_ENTRY}",
                            (domain, lookup, campaign)).fetchone()
            return row, added
        row, added = await self._write(job)
        return SuppressionRecord(*row), added

    async def remove_suppression(self, domain: str, lookup: str,
                                 campaign: str | None) -> SuppressionRecord | None:
        def job(c: sqlite3.Connection) -> tuple | None:
            row = c.execute(f"SELECT {_COLUMNS} FROM suppressions WHERE {_ENTRY}",
                            (domain, lookup, campaign)).fetchone()
            if row is not None:
                c.execute("DELETE FROM suppressions WHERE id=?", (row[0],))
            return row
        row = await self._write(job)
        return SuppressionRecord(*row) if row else None

    async def suppressions(self, domain: str | None, campaign: str | None,
                           lookup: str | None, limit: int, after: int | None
                           ) -> list[SuppressionRecord]:
        where, args = ["id>?"], [after or 0]
        for column, value in (("domain", domain), ("campaign", campaign), ("lookup", lookup)):
            if value is not None:
                where.append(f"{column}=?")
                args.append(value)
        rows = self.conn.execute(f"SELECT {_COLUMNS} FROM suppressions "
                                 f"WHERE {' AND '.join(where)} ORDER BY id LIMIT ?",
                                 (*args, limit))
        return [SuppressionRecord(*r) for r in rows]

    async def suppressed(self, domain: str, lookups: Collection[str], campaign: str | None
                         ) -> dict[str, SuppressionRecord]:
        found: dict[str, SuppressionRecord] = {}
        keys = list(dict.fromkeys(lookups))
        for i in range(0, len(keys), _SLICE):
            part = keys[i:i + _SLICE]
            marks = ",".join("?" * len(part))
            # Domain-wide entries (campaign NULL) sort first and win.
            rows = self.conn.execute(
                f"SELECT {_COLUMNS} FROM suppressions WHERE domain=? AND lookup IN ({marks}) "
                "AND (campaign IS NULL OR campaign=?) ORDER BY campaign IS NOT NULL, id",
                (domain, *part, campaign))
            for row in rows:
                found.setdefault(row[3], SuppressionRecord(*row))
        return found
