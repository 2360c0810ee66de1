"""The suppression list as the store keeps it: addresses a sending domain no longer
sends to, for all of its mail (campaign None) or for one campaign's.

An entry is keyed by (domain, lookup, campaign); `lookup` is the address as lookups
compare it (address.py `Address.key`: local part case-insensitive, canonical domain),
`address` the form it was given in. What suppresses what, and when, is
delivery/suppression.py's; the store only keeps and finds entries.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SuppressionRecord:
    id: int
    domain: str                  # the sending domain, canonical
    address: str                 # as given
    lookup: str                  # lower(local part) @ canonical domain
    campaign: str | None         # None: every message of the domain
    reason: str                  # unsubscribe | bounce | complaint | manual
    source: str                  # what added it: the bounce reply, the unsubscribe method...
    created: float


class SuppressionStore(Protocol):
    async def add_suppression(self, domain: str, address: str, lookup: str,
                              campaign: str | None, reason: str, source: str,
                              created: float) -> tuple[SuppressionRecord, bool]:
        """Add the entry unless (domain, lookup, campaign) is there already: the entry
        that is there now, and whether this call added it."""
        ...

    async def remove_suppression(self, domain: str, lookup: str,
                                 campaign: str | None) -> SuppressionRecord | None:
        """Remove that one entry (campaign None: the domain-wide one); None: there was none."""
        ...

    async def suppressions(self, domain: str | None, campaign: str | None,
                           lookup: str | None, limit: int, after: int | None
                           ) -> list[SuppressionRecord]:
        """Entries matching every filter given, in id order: up to `limit` with ids above
        `after`."""
        ...

    async def suppressed(self, domain: str, lookups: Collection[str], campaign: str | None
                         ) -> dict[str, SuppressionRecord]:
        """Which of `lookups` the domain suppresses for a message of `campaign`: entries
        of the whole domain, and of that campaign when one is given. One per lookup
        (a domain-wide entry before a campaign's)."""
        ...
