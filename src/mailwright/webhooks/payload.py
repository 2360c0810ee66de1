"""What one delivery sends: the event as a JSON object, and the headers that name and
sign it (README "Webhooks" documents both)."""

from __future__ import annotations

import json

from ..store.webhooks import PendingWebhook
from . import signing

USER_AGENT = "Mailwright-Webhooks/1"
DELIVERY = "Mailwright-Delivery"     # the delivery's id: the same on every retry
EVENT = "Mailwright-Event"           # the event type, to route on before parsing


def body(item: PendingWebhook) -> bytes:
    e = item.event
    return json.dumps({"id": e.id, "delivery": item.delivery.id, "type": e.type, "ts": e.ts,
                       "session": e.session, "message_id": e.message_id,
                       "address": e.address, "domain": e.domain, "tag": e.tag,
                       "data": e.data},
                      ensure_ascii=False, separators=(",", ":")).encode()


def headers(secret: str, item: PendingWebhook, content: bytes, timestamp: int
            ) -> dict[str, str]:
    return {"Content-Type": "application/json", "User-Agent": USER_AGENT,
            DELIVERY: str(item.delivery.id), EVENT: item.event.type,
            signing.HEADER: signing.sign(secret, timestamp, content)}
