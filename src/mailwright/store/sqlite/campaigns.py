"""Campaign figures for SQLite (store/campaigns.py): aggregate queries over the events
table. A campaign's rows come off the tag index (events_tag); a domain's campaign mail
is found from its `accepted` rows (events_domain), the rest of each message's rows by
message id (events_message)."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection

from ..campaigns import CampaignRow, Tally, accepted_scope, tallies

# A kind: the type, or "type:stage" (the `suppressed` event's stage).
_KIND = "e.type || coalesce(':' || json_extract(e.data, '$.stage'), '')"
# An event of a scanner or privacy proxy, not of the recipient (`opened`, `clicked`).
_MACHINE = "coalesce(json_extract(e.data, '$.machine'), 0)"
_DAY = "date({}, 'unixepoch')"


class SQLiteCampaigns:
    conn: sqlite3.Connection

    async def campaign_tally(self, tag: str | None, domain: str | None,
                             kinds: Collection[str]) -> tuple[Tally, list[Tally]]:
        scope, args = accepted_scope(tag, domain, "?")
        accepted = self.conn.execute(
            f"SELECT {_DAY.format('a.ts')}, count(*), "
            "sum(coalesce(json_extract(a.data, '$.local'), 0)), "
            "sum(coalesce(json_extract(a.data, '$.remote'), 0)), min(a.ts), max(a.ts) "
            f"FROM events a WHERE {scope} GROUP BY 1 ORDER BY 1", args).fetchall()
        kinds = list(kinds)
        # The events of those messages; with a tag, straight off the tag index.
        rows = (f"events e WHERE e.tag=? AND e.message_id IN "
                f"(SELECT a.message_id FROM events a WHERE {scope})") if tag is not None \
            else (f"events e WHERE e.message_id IN "
                  f"(SELECT a.message_id FROM events a WHERE {scope})")
        marks = ",".join("?" * len(kinds))
        # One row per kind and copy: when it first had one, and one not of a machine.
        first = self.conn.execute(
            f"WITH copies AS (SELECT {_KIND} AS kind, min(e.ts) AS first_any, "
            f"min(CASE WHEN {_MACHINE} THEN NULL ELSE e.ts END) AS first_human "
            f"FROM {rows} GROUP BY kind, e.message_id, e.address) "
            f"SELECT kind, {_DAY.format('first_any')}, count(*), NULL FROM copies "
            f"WHERE kind IN ({marks}) GROUP BY 1, 2 "
            f"UNION ALL SELECT kind, {_DAY.format('first_human')}, NULL, count(*) "
            f"FROM copies WHERE kind IN ({marks}) AND first_human IS NOT NULL GROUP BY 1, 2",
            (*([tag] if tag is not None else []), *args, *kinds, *kinds)).fetchall()
        return tallies(accepted, first)

    async def campaigns(self, domain: str | None) -> list[CampaignRow]:
        where, args = ("AND a.domain=?", [domain]) if domain is not None else ("", [])
        rows = self.conn.execute(
            "SELECT a.tag, a.domain, count(*), "
            "sum(coalesce(json_extract(a.data, '$.local'), 0) "
            "+ coalesce(json_extract(a.data, '$.remote'), 0)), min(a.ts), max(a.ts) "
            f"FROM events a WHERE a.type='accepted' AND a.tag IS NOT NULL {where} "
            "GROUP BY a.tag, a.domain ORDER BY max(a.ts) DESC", args)
        return [CampaignRow(*r) for r in rows]

