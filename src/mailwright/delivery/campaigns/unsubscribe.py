"""The List-Unsubscribe fields of campaign mail (RFC 2369 §3.2, RFC 8058 §3.1), and
what an unsubscribe does, whichever way it came (the https one-click of
admin/tracking.py, the mailto: of stages/unsubscribe_mail.py).

A campaign copy names its recipient's one-click URL, https://<tracking host>/u/TOKEN,
and, with `[campaigns] unsubscribe_local_part` set, a mailto: URI carrying the same
token (mailto.py); List-Unsubscribe-Post says a POST of "List-Unsubscribe=One-Click"
to the https one unsubscribes without further interaction (RFC 8058 §3.1). RFC 8058
§4 requires both fields to be covered by a DKIM signature: trust/dkim.py
SIGNED_HEADERS names them, and the tracking stage adds them before the signing stage
runs.
"""

from __future__ import annotations

from ...config import CampaignSettings
from ...events.log import EventLog
from ...events.types import Event
from ...message.headers import select_fields
from ...store.events import EventQuery, EventStore
from .tokens import Token

FIELDS = ("List-Unsubscribe", "List-Unsubscribe-Post")


def fields(url: str, mailto: str | None = None) -> bytes:
    # RFC 2369 §3.2: a client uses the leftmost method it supports, so https (one-click)
    # first; the mailto: on a folded line of its own (RFC 5322 §2.2.3: each token is
    # long, and the line must stay within 998 octets).
    uris = f"<{url}>" + (f",\r\n <{mailto}>" if mailto else "")
    return (f"List-Unsubscribe: {uris}\r\n"
            f"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n").encode("ascii")


def replace_fields(message: bytes, url: str, mailto: str | None = None) -> bytes:
    """The message with our two fields first and any it had of these names removed
    (RFC 2369 allows one of each; a sender's own would point elsewhere)."""
    ours = fields(url, mailto)
    end = message.find(b"\r\n\r\n")
    if end < 0:
        return ours + message
    block = message[:end + 2]
    if b"list-unsubscribe" in block.lower():
        return ours + select_fields(block, list(FIELDS), exclude=True) + message[end + 4:]
    return ours + message


def scope(settings: CampaignSettings, token: Token) -> str | None:
    """The campaign an unsubscribe stops (None: all the sending domain's mail):
    `[campaigns] unsubscribe_scope`; unnamed campaign mail stops the domain's."""
    return (token.tag or None) if settings.unsubscribe_scope == "campaign" else None


async def recorded(store: EventStore, event: Event, token: Token) -> bool:
    """Does the event log hold `event` (opened, clicked, unsubscribed) of this token's
    recipient of its message already? One indexed query on message_id."""
    page = await store.search_events(EventQuery(
        types=(event.value,), message_id=token.message_id, address=token.rcpt.lower(),
        limit=1))
    return bool(page.events)


def unsubscribed(events: EventLog, session: str | None, token: Token, method: str) -> None:
    """The `unsubscribed` event (method: one-click, page, mailto)."""
    events.emit(Event.UNSUBSCRIBED, session, token.message_id, rcpt=token.rcpt,
                domain=token.domain, method=method, tag=token.tag or None)
