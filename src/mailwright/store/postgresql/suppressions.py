"""The suppression list for PostgreSQL (store/suppressions.py)."""

from __future__ import annotations

from collections.abc import Collection

from ..suppressions import SuppressionRecord
from .db import Database

_COLUMNS = "id, domain, address, lookup, campaign, reason, source, created"
# The unique index is over coalesce(campaign, ''): NULLs are distinct in a UNIQUE key.
_ENTRY = "domain=%s AND lookup=%s AND coalesce(campaign, '')=coalesce(%s::text, '')"


class PostgresSuppressions:
    db: Database

    async def add_suppression(self, domain: str, address: str, lookup: str,
                              campaign: str | None, reason: str, source: str,
                              created: float) -> tuple[SuppressionRecord, bool]:
        row = await self.db.fetchone(
            "INSERT INTO suppressions (domain, address, lookup, campaign, reason, source, "
            "created) VALUES (%s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (domain, lookup, coalesce(campaign, '')) DO NOTHING "
            f"RETURNING {_COLUMNS}",
            (domain, address, lookup, campaign, reason, source, created))
        if row is not None:
            return SuppressionRecord(*row), True
        # The entry there already, kept as it was (the first one wins).
        row = await self.db.fetchone(f"SELECT {_COLUMNS} FROM suppressions WHERE {_ENTRY}",
                                     (domain, lookup, campaign))
        if row is None:                  # removed between the two: add it after all
            return await self.add_suppression(domain, address, lookup, campaign, reason,
                                              source, created)
        return SuppressionRecord(*row), False

    async def remove_suppression(self, domain: str, lookup: str,
                                 campaign: str | None) -> SuppressionRecord | None:
        row = await self.db.fetchone(
            f"DELETE FROM suppressions WHERE {_ENTRY} RETURNING {_COLUMNS}",
            (domain, lookup, campaign))
        return SuppressionRecord(*row) if row else None

    async def suppressions(self, domain: str | None, campaign: str | None,
                           lookup: str | None, limit: int, after: int | None
                           ) -> list[SuppressionRecord]:
        where, args = ["id>%s"], [after or 0]
        for column, value in (("domain", domain), ("campaign", campaign), ("lookup", lookup)):
            if value is not None:
                where.append(f"{column}=%s")
                args.append(value)
        rows = await self.db.fetchall(f"SELECT {_COLUMNS} FROM suppressions "
                                      f"WHERE {' AND '.join(where)} ORDER BY id LIMIT %s",
                                      (*args, limit))
        return [SuppressionRecord(*r) for r in rows]

    async def suppressed(self, domain: str, lookups: Collection[str], campaign: str | None
                         ) -> dict[str, SuppressionRecord]:
        found: dict[str, SuppressionRecord] = {}
        # Every recipient in one query (an array, no limit on parameters); domain-wide
        # entries (campaign NULL) sort first and win.
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM suppressions WHERE domain=%s AND lookup = ANY(%s) "
            "AND (campaign IS NULL OR campaign=%s) ORDER BY campaign IS NOT NULL, id",
            (domain, list(dict.fromkeys(lookups)), campaign))
        for row in rows:
            found.setdefault(row[3], SuppressionRecord(*row))
        return found
