"""Which submitted messages are campaign mail, and under which name.

Only mail of an authenticated sender is ever tracked (SMTP AUTH on a submission
listener, or an HTTP API key: `Client.account`), and only when opted in:
- per message: a header field `X-Mailwright-Campaign: NAME` (removed before the message
  goes anywhere), or the send API's `campaign` field;
- per API key: keys made with `campaigns` set track every message they send (the send
  API sets `ReceivedMessage.campaign`);
- per domain: `[campaigns] tracked_domains` lists sending domains whose mail is always
  tracked.
The campaign name (the field's value, the API's campaign or tag) is the events' tag.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...config import CampaignSettings
from ...message.headers import decode_words, parse_headers, select_fields, unfold
from ...store.blobs import Content, Spooled, head_of
from ..received import ReceivedMessage

FIELD = "X-Mailwright-Campaign"
MAX_NAME = 128


@dataclass(frozen=True)
class Campaign:
    name: str | None            # the tag of its events (None: tracked without a name)
    domain: str                 # the sending domain: whose suppression list
    content: Content            # the message without the X-Mailwright-Campaign field


def campaign_of(msg: ReceivedMessage, settings: CampaignSettings) -> Campaign | None:
    """The campaign msg belongs to, or None when it is not tracked."""
    account = msg.client.account
    if account is None:
        return None
    domain = account.rpartition("@")[2].lower()
    head = head_of(msg.content)
    end = head.find(b"\r\n\r\n")
    block = head[:end + 2] if end >= 0 else head
    named = None
    content = msg.content
    if FIELD.lower().encode() in block.lower():
        values = parse_headers(block, 0, len(block)).get_all(FIELD) or []
        if values:
            named = _name(str(values[0]))
            kept = select_fields(block, [FIELD], exclude=True)
            content = _with_head(msg.content, kept, len(block) + 2 if end >= 0 else len(head))
            return Campaign(named or msg.tag, domain, content)
    if msg.campaign or domain in settings.tracked_domains:
        return Campaign(msg.tag, domain, content)
    return None


def _name(value: str) -> str | None:
    name = " ".join(decode_words(unfold(value)).split())[:MAX_NAME]
    return name if name and name.isprintable() else None


def _with_head(content: Content, block: bytes, cut: int) -> Content:
    """content with its header block (the first `cut` octets) replaced by block."""
    if isinstance(content, Spooled):
        return content.with_head(block + content.head[cut:])
    return block + content[cut:]
