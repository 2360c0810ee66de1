"""Dashboard statistics, counted from the event log (docs/EVENTS.md, "Statistics"):
traffic per hour or day, and a summary of the last 24 hours.

Every number is a count of event rows, made by the store (store/events.py
count_events, top_values), never a second counter kept beside the log: what the pruner
removed ([events] retention) is no longer counted. The series:

    received   `accepted` on the mx listener (role mx): mail for our users
    sent       `accepted` from our users (role submission or submissions; the HTTP
               API's send is submission too)
    delivered  `delivered`: a queued recipient accepted by the remote host
    deferred   `deferred`: a delivery attempt that failed temporarily (each attempt)
    bounced    `bounced`: a queued recipient failed permanently
    rejected   `rejected`: a recipient or message refused (SMTP or the HTTP API)

received and sent count messages; delivered, deferred and bounced count recipients
(one message to three remote recipients is up to three of them).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..events.types import Event
from ..queue.states import FINAL
from ..store.events import Buckets, Series
from . import validate
from .context import Context
from .errors import Invalid

HOUR, DAY = 3600, 86400
# span -> (seconds per bucket, buckets); buckets start on whole UTC hours / days
# (the epoch is midnight UTC and a UTC day has no leap seconds in POSIX time).
SPANS = {"24h": (HOUR, 24), "30d": (DAY, 30)}
SERIES = {
    "received": Series(Event.ACCEPTED.value, ("mx",)),
    "sent": Series(Event.ACCEPTED.value, ("submission", "submissions")),
    "delivered": Series(Event.DELIVERED.value),
    "deferred": Series(Event.DEFERRED.value),
    "bounced": Series(Event.BOUNCED.value),
    "rejected": Series(Event.REJECTED.value),
}
TOP_REJECTIONS = 10


@dataclass(frozen=True)
class Traffic:
    start: float                           # unix time of the first bucket's start
    step: int                              # seconds per bucket
    types: tuple[str, ...]                 # the series, in SERIES order
    counts: dict[str, tuple[int, ...]]     # series -> one count per bucket, oldest first

    @property
    def buckets(self) -> int:
        return len(next(iter(self.counts.values()), ()))


@dataclass(frozen=True)
class Summary:
    queue_size: int                        # queued recipients not yet final
    delivered: int                         # last 24 h
    failed: int                            # bounced, last 24 h
    success_rate: float | None             # delivered / (delivered + failed); None: none
    top_rejections: tuple[tuple[str, int], ...]  # (reason, count), most first, last 24 h


class Stats:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.store = ctx.store
        self.clock = ctx.clock

    async def traffic(self, span: str = "24h", domain: str | None = None) -> Traffic:
        """Counts per bucket of each series over `span`: "24h" (24 hourly buckets, the
        last the current hour) or "30d" (30 daily ones, the last today, UTC); only
        `domain`'s events when one is given (the events' domain key)."""
        if span not in SPANS:
            raise Invalid(f"invalid span {span!r}: one of {', '.join(SPANS)}")
        step, count = SPANS[span]
        end = (int(self.clock()) // step + 1) * step       # end of the current bucket
        buckets = Buckets(float(end - step * count), step, count)
        counts = await self.store.count_events(SERIES, buckets, _domain(domain))
        return Traffic(buckets.start, step, tuple(SERIES), counts)

    async def summary(self, domain: str | None = None) -> Summary:
        """The queue now, and the last 24 hours' outcomes and rejection reasons."""
        domain = _domain(domain)
        now = self.clock()
        day = Buckets(now - DAY, DAY, 1)
        outcomes = {name: SERIES[name] for name in ("delivered", "bounced")}
        counts = await self.store.count_events(outcomes, day, domain)
        delivered, failed = counts["delivered"][0], counts["bounced"][0]
        reasons = await self.store.top_values(Event.REJECTED.value, "reason", now - DAY, now,
                                              domain, TOP_REJECTIONS)
        attempted = delivered + failed
        return Summary(await self._queue_size(domain), delivered, failed,
                       delivered / attempted if attempted else None, tuple(reasons))

    async def _queue_size(self, domain: str | None) -> int:
        """Recipients still to deliver (pending, deferred, held); of a domain: those of
        the messages it sent, as its domain-admin keys see the queue."""
        if domain is None:
            depth = await self.store.queue_depth()
            return sum(n for state, n in depth.items() if state not in FINAL)
        return sum(1 for m in await self.store.queue_messages()
                   if m.mail_from.rpartition("@")[2].lower() == domain
                   for r in m.recipients if r.state not in FINAL)


def _domain(domain: str | None) -> str | None:
    return validate.domain(domain) if domain is not None else None
