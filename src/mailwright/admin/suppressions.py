"""The suppression list: addresses a sending domain no longer sends to, for all its mail
or for one campaign's. Add (idempotent), remove, list a page at a time, check.

Entries come from unsubscribes (the public one-click and mailto endpoints), hard
bounces and complaints (when [campaigns] says so) and admins (reason "manual"). What
an entry stops, and where it is checked, is delivery/suppression.py's.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..delivery import suppression
from ..delivery.suppression import MANUAL, REASONS
from ..store.suppressions import SuppressionRecord
from . import validate
from .context import Context
from .errors import Invalid, NotFound

MAX_LIMIT = 1000
MAX_SOURCE = 500


@dataclass(frozen=True)
class Suppression:
    id: int
    domain: str                  # the sending domain, canonical
    address: str                 # as given (the domain part canonical)
    campaign: str | None         # None: every message of the domain
    reason: str                  # unsubscribe | bounce | complaint | manual
    source: str                  # what added it: a bounce's reply, the unsubscribe method...
    created: float

    @classmethod
    def of(cls, r: SuppressionRecord) -> Suppression:
        return cls(r.id, r.domain, r.address, r.campaign, r.reason, r.source, r.created)


@dataclass(frozen=True)
class SuppressionPage:
    suppressions: list[Suppression]  # in id order
    next: int | None                 # `after` for the next page; None: this is the last


def _campaign(value: str | None) -> str | None:
    return None if value is None else validate.tag(value, "campaign")


class Suppressions:
    def __init__(self, ctx: Context):
        self.store = ctx.store
        self.clock = ctx.clock

    async def add(self, domain: str, address: str, *, campaign: str | None = None,
                  reason: str = MANUAL, source: str = "") -> Suppression:
        """Stop mail of the local domain `domain` (of one campaign, or all of it) to
        `address`. Adding an entry that is there already returns it unchanged."""
        name = await validate.existing_domain(
            self.store, domain, hint=f"suppression lists are per sending domain: "
                                     f"mailwright domain add {domain}")
        a = validate.address(address)
        if reason not in REASONS:
            raise Invalid(f"unknown reason {reason!r}: use one of {', '.join(REASONS)}")
        if len(source) > MAX_SOURCE or not source.isprintable():
            raise Invalid(f"source: at most {MAX_SOURCE} printable characters")
        record, _ = await suppression.add(self.store, name, str(a), campaign=_campaign(campaign),
                                          reason=reason, source=source, created=self.clock())
        return Suppression.of(record)

    async def remove(self, domain: str, address: str, *, campaign: str | None = None
                     ) -> Suppression:
        """Remove one entry: the domain-wide one (campaign None) or that campaign's."""
        name, a = validate.domain(domain), validate.address(address)
        record = await self.store.remove_suppression(name, a.key, _campaign(campaign))
        if record is None:
            scope = f"campaign {campaign!r} of {name}" if campaign is not None else name
            raise NotFound(f"{a} is not suppressed for {scope} "
                           "(see: mailwright suppression list)")
        return Suppression.of(record)

    async def list(self, domain: str | None = None, *, campaign: str | None = None,
                   address: str | None = None, limit: int = 100, after: int | None = None
                   ) -> SuppressionPage:
        """Entries matching every filter given, oldest first: up to `limit` (1 to 1000)
        with ids above `after` (the `next` of the previous page)."""
        if type(limit) is not int or not 1 <= limit <= MAX_LIMIT:
            raise Invalid(f"invalid limit {limit!r}: expected 1 to {MAX_LIMIT}")
        if after is not None and (type(after) is not int or after < 0):
            raise Invalid(f"invalid after {after!r}: the `next` of a previous page")
        records = await self.store.suppressions(
            validate.domain(domain) if domain is not None else None, _campaign(campaign),
            validate.address(address).key if address is not None else None, limit + 1, after)
        page = [Suppression.of(r) for r in records[:limit]]
        return SuppressionPage(page, page[-1].id if len(records) > limit else None)

    async def check(self, domain: str, address: str, *, campaign: str | None = None
                    ) -> Suppression | None:
        """The entry that stops mail of `domain` (of `campaign`, or untagged) to
        `address`, as delivery checks it; None: it would be sent."""
        name, a = validate.domain(domain), validate.address(address)
        found = await suppression.suppressed(self.store, name, [str(a)], _campaign(campaign))
        return Suppression.of(found[str(a)]) if found else None
