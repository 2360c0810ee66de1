"""Stage: campaign mail gets open and click tracking and a one-click unsubscribe.

For a message that is campaign mail (delivery/campaigns/optin.py; never others, which
pass through untouched), each recipient gets a copy of its own, since every token
names its recipient: its HTML parts rewritten (a pixel, links through the tracking
host; delivery/campaigns/rewrite.py) and List-Unsubscribe / List-Unsubscribe-Post
fields added. The copies go through the rest of the pipeline (relay format, DKIM
signing, store) each on its own, concurrently, so the store commits them in one batch;
a message with one recipient keeps its id, copies of a message with more are
"<id>-1", "<id>-2", ... in recipient order. A message that cannot be rewritten safely
(no HTML, an unknown charset or transfer encoding, HTML the tokenizer gives up on)
still gets the unsubscribe fields, and a `tracking-skipped` event says why.

It runs after the trace stage and before relay formatting and signing, so the DKIM
signature covers the rewritten text and both unsubscribe fields (RFC 8058 §4).
"""

from __future__ import annotations

import asyncio
import dataclasses

from ...config import Config
from ...events.log import EventLog
from ...events.types import Event
from ...mx.downgrade import has_long_lines
from ...store.blobs import whole
from ..campaigns import keys, mailto, optin, rewrite, tokens, unsubscribe
from ..campaigns.tokens import Token
from ..pipeline import Pipeline
from ..received import ReceivedMessage

# RFC 2046 §4.1.2 has no say on it; an invisible 1x1 image as the last element.
PIXEL = ('<img src="{}" width="1" height="1" alt="" '
         'style="display:block;width:1px;height:1px;border:0">')


class TrackingStage:
    def __init__(self, config: Config, events: EventLog, rest: Pipeline):
        self.config = config
        self.settings = config.campaigns
        self.base = f"https://{config.campaigns.host(config.hostname)}"
        self.events = events
        self.rest = rest                  # what runs on each copy: relay format, sign, store

    async def run(self, msg: ReceivedMessage) -> None:
        campaign = optin.campaign_of(msg, self.settings)
        if campaign is None:
            await self.rest.run(msg)
            return
        msg.tag = campaign.name            # accepted / delivered / bounced carry it
        ring = keys.ring_for(self.config)
        recipients = msg.envelope.recipients
        ids = [msg.id] if len(recipients) == 1 else \
            [f"{msg.id}-{i}" for i in range(1, len(recipients) + 1)]
        base, tag, settings = self.base, campaign.name or "", self.settings

        def copies() -> tuple[list[bytes], rewrite.Plan]:
            plan = rewrite.analyse(whole(campaign.content))
            out = []
            for copy_id, rcpt in zip(ids, recipients, strict=True):
                def token(kind: str, rcpt=rcpt, copy_id=copy_id) -> str:
                    return tokens.encode(ring, Token(kind, copy_id, str(rcpt.address),
                                                     campaign.domain, tag))
                click = tokens.click_encoder(ring, copy_id, str(rcpt.address),
                                             campaign.domain, tag)
                text = plan.content if plan.reason else plan.apply(
                    lambda url, click=click: f"{base}/t/c/{click(url)}",
                    PIXEL.format(f"{base}/t/o/{token(tokens.OPEN)}"))
                leave = token(tokens.UNSUBSCRIBE)
                out.append(unsubscribe.replace_fields(
                    text, f"{base}/u/{leave}", mailto.uri(settings, campaign.domain, leave)))
            return out, plan

        # Tokenizing is CPU work in proportion to the HTML: in a thread.
        texts, plan = await asyncio.to_thread(copies)
        if plan.reason:
            self.events.emit(Event.TRACKING_SKIPPED, msg.client.session_id, msg.id,
                             reason=plan.reason, domain=campaign.domain, tag=campaign.name)
        # What can make a line too long for relaying (RFC 5321 §4.5.3.1.6): the fields
        # added (a long recipient, domain and campaign make a long token) and a link
        # grown in an unencoded part; quoted-printable and base64 are re-wrapped.
        whole_text = not plan.reason and plan.may_lengthen_lines
        runs = []
        for copy_id, rcpt, text in zip(ids, recipients, texts, strict=True):
            envelope = dataclasses.replace(msg.envelope, recipients=[rcpt])
            copy = dataclasses.replace(msg, id=copy_id, envelope=envelope, content=text,
                                       long_lines=msg.long_lines or has_long_lines(
                                           text if whole_text else _header(text)))
            runs.append(self.rest.run(copy))
        await asyncio.gather(*runs)


def _header(text: bytes) -> bytes:
    end = text.find(b"\r\n\r\n")
    return text if end < 0 else text[:end + 2]
