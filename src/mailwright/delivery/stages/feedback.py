"""Stage: a feedback report (ARF, RFC 5965) arriving at [campaigns] feedback_address
records a complaint: a `complained` event, and with suppress_on_complaint the
complaining recipient goes onto the sending domain's suppression list (for all its mail).
The report itself is delivered as any message (to the account or alias behind the
address). Mail from other servers only; runs after the inbound checks, so a report
that fails them is refused first.

Anyone who can send to the feedback address can suppress a recipient of ours: keep the
address to the feedback loops you register it with.
"""

from __future__ import annotations

import asyncio

from ...config import CampaignSettings
from ...events.log import EventLog
from ...events.types import Event
from ...store.base import MailStore
from ...store.blobs import whole
from .. import suppression
from ..feedback import parse_report
from ..received import ReceivedMessage


class FeedbackStage:
    def __init__(self, store: MailStore, events: EventLog, settings: CampaignSettings):
        self.store = store
        self.events = events
        self.settings = settings
        self.address = suppression.lookup_key(settings.feedback_address)

    async def run(self, msg: ReceivedMessage) -> None:
        if msg.client.account is not None or not any(
                r.address.key == self.address for r in msg.envelope.recipients):
            return
        # The email package's parse is CPU work in proportion to the size: in a thread.
        report = await asyncio.to_thread(lambda: parse_report(whole(msg.content)))
        if report is None:
            return
        domain = None
        for candidate in report.domains:
            if await self.store.is_local_domain(candidate):
                domain = candidate
                break
        if domain is None:
            return                        # not about our mail
        suppress = report.complaint and self.settings.suppress_on_complaint
        for rcpt in report.recipients:
            if suppress:
                await suppression.add(self.store, domain, rcpt, campaign=None,
                                      reason=suppression.COMPLAINT,
                                      source=f"ARF {report.feedback_type} report {msg.id}",
                                      created=msg.received_at)
            self.events.emit(Event.COMPLAINED, msg.client.session_id, msg.id, rcpt=rcpt,
                             domain=domain, type=report.feedback_type, suppressed=suppress)
