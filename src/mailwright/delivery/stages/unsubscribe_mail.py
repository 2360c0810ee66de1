"""Stage: mail to the mailto: unsubscribe address of campaign mail
(`[campaigns] unsubscribe_local_part` at a local domain, campaigns/mailto.py)
unsubscribes the recipient its Subject's token names, as the https one-click does: the
same token check (HMAC, tokens.py), the same suppression scope and the same
`unsubscribed` event, with method "mailto".

The address was accepted at RCPT with no target (delivery/submission.py), so the
message is stored in no mailbox and sent nowhere; its other recipients, if any, get it
as usual. A Subject without a valid token (none, changed, signed by a key we do not
have) unsubscribes nobody: the message is still accepted (a refusal would bounce to a
sender who may be forged: RFC 3834 §2 asks automatic responders not to answer such
mail) and an `unsubscribe-ignored` event says why.

Runs on both roles: the unsubscribe mail of a mailbox provider comes to the MX (after
the inbound checks, as the feedback stage's reports do), that of a local user's client
through submission. Whoever sends it, the token is the authority, as for the one-click
URL: it names the recipient and the sending domain, and only we can sign one.
"""

from __future__ import annotations

from ...config import Config
from ...events.log import EventLog
from ...events.types import Event
from ...store.base import MailStore
from ...store.blobs import head_of
from .. import suppression
from ..campaigns import keys, mailto, unsubscribe
from ..received import ReceivedMessage

METHOD = "mailto"


class UnsubscribeMailStage:
    def __init__(self, config: Config, store: MailStore, events: EventLog):
        self.config = config
        self.settings = config.campaigns
        self.store = store
        self.events = events

    async def run(self, msg: ReceivedMessage) -> None:
        # Without targets: the RCPT rule took it for this (an account of that name
        # would have one, and the rule comes first, so none can).
        to = [r.address for r in msg.envelope.recipients
              if not r.targets and mailto.is_address(self.settings, r.address)]
        if not to:
            return
        rcpt = str(to[0])
        token, why = mailto.token_in(keys.ring_for(self.config), head_of(msg.content))
        if token is None:
            self.events.emit(Event.UNSUBSCRIBE_IGNORED, msg.client.session_id, msg.id,
                             rcpt=rcpt, reason=why)
            return
        if not await self.store.is_local_domain(token.domain):
            # The domain was removed since: it sends nothing more, nothing to stop.
            self.events.emit(Event.UNSUBSCRIBE_IGNORED, msg.client.session_id, msg.id,
                             rcpt=rcpt, reason="domain-gone")
            return
        await suppression.add(self.store, token.domain, token.rcpt,
                              campaign=unsubscribe.scope(self.settings, token),
                              reason=suppression.UNSUBSCRIBE, source=METHOD,
                              created=msg.received_at)
        # Once per recipient of a message, as for the one-click: a second mail (or a
        # one-click before it) is recorded already.
        if not await unsubscribe.recorded(self.store, Event.UNSUBSCRIBED, token):
            unsubscribe.unsubscribed(self.events, msg.client.session_id, token, METHOD)
