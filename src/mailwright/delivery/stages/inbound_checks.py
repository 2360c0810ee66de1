"""Stage: the trust verdict on mail from other servers (trust/inbound.py).

SPF, DKIM, ARC, DMARC, iprev, HELO and sender verification give one verdict: refuse the
message, file it in Junk for some recipient domains, or tag it; the Authentication-
Results field that records it is prepended (RFC 8601). Our own users' mail is not
checked: it is theirs, and submission authenticated them.
"""

from __future__ import annotations

from collections.abc import Callable

from ...events.log import EventLog
from ...events.types import Event
from ...store.blobs import Content, Spooled
from ...trust.authresults import strip_ours
from ...trust.inbound import ConnectionChecks, InboundChecks, Verdict
from ..pipeline import Rejection
from ..received import ReceivedMessage


class CheckStage:
    """One per connection: iprev and HELO are checked once per connection."""

    def __init__(self, checks: InboundChecks, events: EventLog):
        self.checks = checks
        self.events = events
        self.connection = ConnectionChecks()

    async def run(self, msg: ReceivedMessage) -> None:
        if msg.client.account is not None:
            return
        # RFC 8601 §5: fields claiming to be ours that we did not add go first.
        msg.content = edit_head(msg.content,
                                lambda head: strip_ours(head, self.checks.authserv_id))
        verdict = await self._verdict(msg)
        msg.checked = True
        if verdict.reject is not None:
            refusal = verdict.reject
            raise Rejection(refusal.status, refusal.text, reason=",".join(verdict.failed))
        msg.content = verdict.header + msg.content
        # Mixed recipients cannot get different SMTP replies after DATA: those whose
        # domain would reject get the message in Junk (trust/inbound.py _decide).
        for rcpt in msg.envelope.recipients:
            if rcpt.address.domain in verdict.quarantine_domains:
                rcpt.junk = True

    async def _verdict(self, msg: ReceivedMessage) -> Verdict:
        client, envelope = msg.client, msg.envelope
        try:
            verdict = await self.checks.check(
                self.connection, client.ip, client.helo, envelope.reverse_path, msg.content,
                {r.address.domain for r in envelope.recipients})
        except Exception as e:         # a check must never lose a message: tag nothing
            self.events.emit(Event.CHECK_ERROR, client.session_id, error=repr(e))
            return Verdict(b"")
        if verdict.failed:
            self.events.emit(Event.AUTH_CHECKS, client.session_id, ip=client.ip,
                             mail_from=envelope.reverse_path, failed=",".join(verdict.failed),
                             action="reject" if verdict.reject else
                             "quarantine" if verdict.quarantine_domains else "tag")
        return verdict


def edit_head(content: Content, edit: Callable[[bytes], bytes]) -> Content:
    """Apply an edit of the header block; a spooled message's head is that block."""
    if isinstance(content, Spooled):
        return content.with_head(edit(content.head))
    return edit(content)
