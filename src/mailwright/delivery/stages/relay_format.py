"""Stage: relayed copies keep to 998 octets a line (RFC 5322 §2.1.1).

Local copies are stored as they came; a copy that leaves has its MIME leaves with longer
lines re-encoded and long header lines folded (mx/downgrade.py shorten_lines). It
runs before signing and sealing, so the signatures cover what is sent (RFC 6376 §5.3).
"""

from __future__ import annotations

import asyncio

from ...mx.downgrade import shorten_lines
from ...store.blobs import whole
from ..destinations import destinations
from ..received import ReceivedMessage


class RelayFormatStage:
    async def run(self, msg: ReceivedMessage) -> None:
        if not msg.long_lines or not destinations(msg.envelope.recipients).remote:
            return
        content = msg.content
        # Needs every octet at once: in a thread (a spooled message is read there).
        msg.relay_text = await asyncio.to_thread(lambda: shorten_lines(whole(content)))
