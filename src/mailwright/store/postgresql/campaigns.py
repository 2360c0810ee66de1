"""Campaign figures for PostgreSQL (store/campaigns.py): the SQLite backend's aggregate
queries (store/sqlite/campaigns.py) over the events table in PostgreSQL's SQL. A
campaign's rows come off events_tag, a domain's campaign mail from its `accepted` rows
(events_domain), the rest of each message's rows by message id (events_message)."""

from __future__ import annotations

from collections.abc import Collection

from ..campaigns import CampaignRow, Tally, accepted_scope, tallies
from .db import Database

# A kind: the type, or "type:stage" (the `suppressed` event's stage).
_KIND = "e.type || coalesce(':' || (e.data->>'stage'), '')"
# An event of a scanner or privacy proxy, not of the recipient (`opened`, `clicked`).
_MACHINE = "coalesce((e.data->>'machine')::boolean, false)"
# The UTC day of a time, as SQLite's date(ts, 'unixepoch') writes it.
_DAY = "to_char(to_timestamp({}) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


def _count(field: str, row: str = "a") -> str:
    """A numeric data field of an `accepted` row, 0 when absent."""
    return f"coalesce(({row}.data->>'{field}')::numeric, 0)"


class PostgresCampaigns:
    db: Database

    async def campaign_tally(self, tag: str | None, domain: str | None,
                             kinds: Collection[str]) -> tuple[Tally, list[Tally]]:
        await self._event_writer.written()                 # type: ignore[attr-defined]
        scope, args = accepted_scope(tag, domain, "%s")
        accepted = await self.db.fetchall(
            f"SELECT {_DAY.format('a.ts')}, count(*), sum({_count('local')})::bigint, "
            f"sum({_count('remote')})::bigint, min(a.ts), max(a.ts) "
            f"FROM events a WHERE {scope} GROUP BY 1 ORDER BY 1", args)
        # The events of those messages; with a tag, straight off the tag index.
        rows = (f"events e WHERE e.tag=%s AND e.message_id IN "
                f"(SELECT a.message_id FROM events a WHERE {scope})") if tag is not None \
            else (f"events e WHERE e.message_id IN "
                  f"(SELECT a.message_id FROM events a WHERE {scope})")
        # One row per kind and copy: when it first had one, and one not of a machine.
        first = await self.db.fetchall(
            f"WITH copies AS (SELECT {_KIND} AS kind, min(e.ts) AS first_any, "
            f"min(CASE WHEN {_MACHINE} THEN NULL ELSE e.ts END) AS first_human "
            f"FROM {rows} GROUP BY kind, e.message_id, e.address) "
            f"SELECT kind, {_DAY.format('first_any')}, count(*), NULL::bigint FROM copies "
            f"WHERE kind = ANY(%s) GROUP BY 1, 2 "
            f"UNION ALL SELECT kind, {_DAY.format('first_human')}, NULL, count(*) "
            f"FROM copies WHERE kind = ANY(%s) AND first_human IS NOT NULL GROUP BY 1, 2",
            (*([tag] if tag is not None else []), *args, list(kinds), list(kinds)))
        return tallies(accepted, first)

    async def campaigns(self, domain: str | None) -> list[CampaignRow]:
        await self._event_writer.written()                 # type: ignore[attr-defined]
        where, args = ("AND a.domain=%s", [domain]) if domain is not None else ("", [])
        rows = await self.db.fetchall(
            f"SELECT a.tag, a.domain, count(*), sum({_count('local')} + {_count('remote')})"
            "::bigint, min(a.ts), max(a.ts) "
            f"FROM events a WHERE a.type='accepted' AND a.tag IS NOT NULL {where} "
            "GROUP BY a.tag, a.domain ORDER BY max(a.ts) DESC", args)
        return [CampaignRow(*r) for r in rows]
