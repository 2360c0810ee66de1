"""Stage: our user's remote recipients that the sending domain suppresses are not sent
to (delivery/suppression.py says whose mail and which entries). Each is a `suppressed`
event and is noted on the message (`ReceivedMessage.suppressed`) for the sender's
answer; the rest of the message goes on. A message left with no recipient at all is
still accepted: a suppression is the sending domain's own choice, not a failure to
report back (no bounce).

It runs after the tracking stage, first of what runs on each campaign copy (or on the
whole of other mail), when the message's campaign (its tag) is final. A copy shares
its message's `suppressed` (dataclasses.replace keeps the same dict), so the sender's
answer hears of the copies too.
"""

from __future__ import annotations

from ...events.log import EventLog
from ...events.types import Event
from ...store.suppressions import SuppressionStore
from ..received import ReceivedMessage
from ..suppression import lookup_key, sending_domain, suppressed


class SuppressStage:
    def __init__(self, store: SuppressionStore, events: EventLog):
        self.store = store
        self.events = events

    async def run(self, msg: ReceivedMessage) -> None:
        domain = sending_domain(msg.client.account)
        recipients = msg.envelope.recipients
        remote = [t.address for r in recipients for t in r.targets if not t.is_local]
        if domain is None or not remote:
            return
        found = await suppressed(self.store, domain, remote, msg.tag)
        if not found:
            return
        for r in recipients:
            r.targets = [t for t in r.targets if t.is_local or t.address not in found]
        for address, entry in found.items():
            key = lookup_key(address)
            if key in msg.suppressed:          # reached twice (an alias and itself)
                continue
            msg.suppressed[key] = entry.reason
            self.events.emit(Event.SUPPRESSED, msg.client.session_id, msg.id, rcpt=address,
                             domain=domain, reason=entry.reason, stage="submission",
                             tag=msg.tag)
