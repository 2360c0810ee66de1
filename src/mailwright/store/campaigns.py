"""Campaign figures as the event log holds them: counted in the store (one pass over a
campaign's rows), judged above it (admin/campaigns.py defines the figures and rates).

A campaign is the messages whose `accepted` event carries its name as the tag (of one
sending domain, or of any); a domain's campaign mail is its messages accepted with any
tag. Over the events of those messages the store counts, per event kind, the distinct
copies (message id and recipient address) that had one: a kind is the event's type,
or "type:stage" for an event with a `stage` field. Only rows still in the event log
count ([events] retention).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Tally:
    """Counts over a campaign's events: in all, or of one UTC day (by the time of a
    copy's first event of each kind)."""
    day: str | None                  # YYYY-MM-DD; None: in all
    messages: int = 0                # `accepted` events
    local: int = 0                   # the sum of their `local` (mailboxes of ours reached)
    remote: int = 0                  # the sum of their `remote` (recipients queued)
    copies: dict[str, int] = field(default_factory=dict)   # kind -> distinct copies
    human: dict[str, int] = field(default_factory=dict)    # the same, without the events
    #                                                          whose `machine` is true
    first: float | None = None       # the first and last `accepted` event
    last: float | None = None


@dataclass(frozen=True)
class CampaignRow:
    name: str
    domain: str                      # the sending domain
    messages: int
    recipients: int                  # local + remote of its `accepted` events
    first: float
    last: float


class CampaignStore(Protocol):
    async def campaign_tally(self, tag: str | None, domain: str | None,
                             kinds: Collection[str]) -> tuple[Tally, list[Tally]]:
        """The totals and the per-day tallies (oldest day first) of the messages accepted
        with `tag` (None: with any tag) from `domain` (None: any), counting the events
        of `kinds`."""
        ...

    async def campaigns(self, domain: str | None) -> list[CampaignRow]:
        """Every campaign still in the event log (of one sending domain), newest first."""
        ...


def tallies(accepted: list[tuple], first: list[tuple]) -> tuple[Tally, list[Tally]]:
    """Totals and per-day tallies from the grouped rows of a backend's campaign_tally
    (both backends share this arithmetic): (day, messages, local, remote, first, last)
    of `accepted`; (kind, day, copies first seen that day or None, human copies first
    seen that day or None) of the other events."""
    days = {d: Tally(d, messages, local, remote, first=first_ts, last=last_ts)
            for d, messages, local, remote, first_ts, last_ts in accepted}
    copies: dict[str, int] = {}
    human: dict[str, int] = {}
    for kind, d, any_n, human_n in first:
        t = days.setdefault(d, Tally(d))
        into, n = (t.copies, any_n) if any_n is not None else (t.human, human_n)
        into[kind] = into.get(kind, 0) + n
        overall = copies if any_n is not None else human
        overall[kind] = overall.get(kind, 0) + n
    total = Tally(None, sum(t.messages for t in days.values()),
                  sum(t.local for t in days.values()), sum(t.remote for t in days.values()),
                  copies, human, min((t.first for t in days.values() if t.first), default=None),
                  max((t.last for t in days.values() if t.last), default=None))
    return total, [days[d] for d in sorted(days)]


def accepted_scope(tag: str | None, domain: str | None, mark: str) -> tuple[str, list]:
    """The `accepted` rows (as `a`) of the messages in scope: a WHERE clause with the
    driver's parameter `mark` ("?" or "%s") and its arguments."""
    where, args = ["a.type='accepted'"], []
    if tag is None:
        where.append("a.tag IS NOT NULL")
    else:
        where.append(f"a.tag={mark}")
        args.append(tag)
    if domain is not None:
        where.append(f"a.domain={mark}")
        args.append(domain)
    return " AND ".join(where), args
