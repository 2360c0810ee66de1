"""Stages: what we add to mail leaving on behalf of our domains (trust/outbound.py).

SignStage: a DKIM signature (RFC 6376) on what our users submit, on each text that is
stored or sent. SealStage: an ARC set (RFC 8617) on mail from elsewhere that we forward
through an alias, so the next hop can trust our verdict although SPF (and maybe DKIM)
no longer pass there. Both read a spooled message whole in their signing thread.
"""

from __future__ import annotations

from ...trust.outbound import OutboundSigner
from ..destinations import destinations
from ..received import ReceivedMessage


class SignStage:
    def __init__(self, signer: OutboundSigner):
        self.signer = signer

    async def run(self, msg: ReceivedMessage) -> None:
        if msg.client.account is None:         # only what an authenticated user submits
            return
        mail_from = msg.envelope.reverse_path
        # content goes to local mailboxes, and is relayed as it is unless re-encoded.
        if msg.relay_text is None or destinations(msg.envelope.recipients).local:
            msg.signature = await self.signer.sign(msg.content, mail_from)
        if msg.relay_text is not None:
            msg.relay_signature = await self.signer.sign(msg.relay_text, mail_from)


class SealStage:
    def __init__(self, signer: OutboundSigner):
        self.signer = signer

    async def run(self, msg: ReceivedMessage) -> None:
        # The seal records our verdict (RFC 8617 §5.1.1 cv=): only checked mail has one.
        if not msg.checked or not destinations(msg.envelope.recipients).remote:
            return
        msg.relay_seal = await self.signer.seal(
            msg.relay_copy(), [r.address.domain for r in msg.envelope.recipients])
