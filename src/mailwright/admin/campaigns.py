"""Campaign reports: what became of a campaign's mail (or of all of a domain's campaign
mail), from the event log, in all and per UTC day.

A campaign is the messages accepted with its name as their tag (the send API's tag or
campaign, the X-Mailwright-Campaign field); a tracked message sent to several
recipients is one copy per recipient. The figures, each counted once per copy (message
and recipient), however often its events repeat:

  sent            recipients accepted for delivery (local mailboxes and queued remote
                  ones; those suppressed at submission never count), less those the
                  queue then found suppressed
  delivered       local copies, and queued ones a remote server accepted (`delivered`)
  bounced         copies that failed for good (`bounced`)
  suppressed      copies not sent for the suppression list (`suppressed`, both stages)
  opened          copies with an `opened` event of a person (machine false): the human
                  unique opens; opened_all counts machine opens too (privacy proxies
                  such as Apple Mail Privacy Protection, link scanners)
  clicked         copies with a `clicked` event of a person; clicked_all with machines
  unsubscribed    copies with an `unsubscribed` event

  bounce rate       bounced / sent
  open rate         opened / delivered        (open_rate_all: opened_all / delivered)
  click rate (CTR)  clicked / delivered       (click_rate_all: clicked_all / delivered)
  click-to-open     clicked / opened (may pass 1 when images are blocked: a click then
                    has no recorded open)
  unsubscribe rate  unsubscribed / delivered

A rate whose denominator is 0 is None. Per day, each copy counts on the UTC day of its
first event of that kind (opens and clicks: its first human one). The event log keeps
rows for [events] retention_days: older campaigns lose their figures with them.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from ..store.campaigns import CampaignRow, Tally
from . import validate
from .context import Context
from .errors import NotFound

KINDS = ("delivered", "bounced", "suppressed:submission", "suppressed:queue", "opened",
         "clicked", "unsubscribed")
DAY_COLUMNS = ("day", "sent", "delivered", "bounced", "suppressed", "opened", "clicked",
               "unsubscribed")


@dataclass(frozen=True)
class Figures:
    sent: int
    delivered: int
    bounced: int
    suppressed: int
    opened: int                     # human unique opens
    opened_all: int                 # with machine opens
    clicked: int                    # human unique clicks
    clicked_all: int
    unsubscribed: int
    bounce_rate: float | None
    open_rate: float | None
    open_rate_all: float | None
    click_rate: float | None        # CTR
    click_rate_all: float | None
    click_to_open: float | None
    unsubscribe_rate: float | None

    @classmethod
    def of(cls, t: Tally) -> Figures:
        c, h = t.copies, t.human
        sent = t.local + t.remote - c.get("suppressed:queue", 0)
        delivered = t.local + c.get("delivered", 0)
        bounced, unsubscribed = c.get("bounced", 0), c.get("unsubscribed", 0)
        opened, clicked = h.get("opened", 0), h.get("clicked", 0)
        return cls(sent, delivered, bounced,
                   c.get("suppressed:submission", 0) + c.get("suppressed:queue", 0),
                   opened, c.get("opened", 0), clicked, c.get("clicked", 0), unsubscribed,
                   _rate(bounced, sent), _rate(opened, delivered),
                   _rate(c.get("opened", 0), delivered), _rate(clicked, delivered),
                   _rate(c.get("clicked", 0), delivered), _rate(clicked, opened),
                   _rate(unsubscribed, delivered))


@dataclass(frozen=True)
class Day:
    day: str                        # YYYY-MM-DD (UTC)
    figures: Figures


@dataclass(frozen=True)
class Report:
    name: str | None                # the campaign; None: every campaign of the domain
    domain: str | None              # the sending domain; None: every domain
    messages: int                   # accepted messages (tracked copies count each)
    first: float | None             # the first and the last accepted
    last: float | None
    figures: Figures
    days: list[Day]                 # oldest first; only days with events


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


class Campaigns:
    def __init__(self, ctx: Context):
        self.store = ctx.store

    async def list(self, domain: str | None = None) -> list[CampaignRow]:
        """The campaigns in the event log (of one sending domain), last sent first."""
        return await self.store.campaigns(validate.domain(domain) if domain else None)

    async def report(self, name: str, domain: str | None = None) -> Report:
        """One campaign's report: of one sending domain, or of every domain that sent
        mail under that name."""
        tag = validate.tag(name, "campaign")
        canonical = validate.domain(domain) if domain is not None else None
        report = await self._report(tag, canonical)
        if not report.messages:
            where = f" from {canonical}" if canonical else ""
            raise NotFound(f"no campaign {tag!r}{where} in the event log "
                           "(see: mailwright campaign list)")
        return report

    async def domain_report(self, domain: str) -> Report:
        """Every campaign of a local domain together."""
        name = await validate.existing_domain(self.store, domain)
        return await self._report(None, name)

    async def _report(self, tag: str | None, domain: str | None) -> Report:
        total, days = await self.store.campaign_tally(tag, domain, KINDS)
        return Report(tag, domain, total.messages, total.first, total.last,
                      Figures.of(total), [Day(t.day, Figures.of(t)) for t in days])


def report_csv(report: Report) -> str:
    """The per-day figures as CSV (RFC 4180: CRLF line ends), then a `total` row."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(DAY_COLUMNS)
    for label, f in [(d.day, d.figures) for d in report.days] + [("total", report.figures)]:
        writer.writerow([label, *(getattr(f, c) for c in DAY_COLUMNS[1:])])
    return out.getvalue()
