"""Stage: the message made durable: local copies into mailboxes, remote recipients into
the queue (store.deliver, one batch commit). Only after it does SMTP say 250."""

from __future__ import annotations

from collections.abc import Callable

from ...events.log import EventLog
from ...events.types import Event
from ...store.base import MailStore
from ...store.messages import Delivery
from ..destinations import destinations
from ..pipeline import TemporaryFailure
from ..received import ReceivedMessage


class StoreStage:
    def __init__(self, store: MailStore, events: EventLog,
                 on_queued: Callable[[], None] | None = None):
        self.store = store
        self.events = events
        self.on_queued = on_queued            # tells the queue runner there is work

    async def run(self, msg: ReceivedMessage) -> None:
        envelope, client = msg.envelope, msg.client
        where = destinations(envelope.recipients)
        delivery = Delivery(
            message_id=msg.id, mail_from=envelope.reverse_path,
            local=where.local,
            local_content=msg.local_copy() if where.local else b"",
            remote=where.remote, relay_content=msg.relay_copy() if where.remote else b"",
            body=envelope.body, smtputf8=envelope.smtputf8, ret=envelope.ret,
            envid=envelope.envid, sender_account=client.account, tag=msg.tag)
        try:
            # Nothing to store when every recipient was suppressed (stages/suppress.py).
            if where.local or where.remote:
                await self.store.deliver(delivery)
        except Exception as e:
            self.events.emit(Event.STORE_ERROR, client.session_id, msg.id, error=repr(e))
            # RFC 3463 4.3.0: other mail system status (the client tries again later).
            raise TemporaryFailure("4.3.0", "Local error in processing, try again later") \
                from e
        if where.remote and self.on_queued:
            self.on_queued()
        self.events.emit(
            Event.ACCEPTED, client.session_id, msg.id, ip=client.ip, size=len(msg.content),
            mail_from=envelope.reverse_path, rcpts=len(envelope.recipients),
            local=len(where.local), remote=len(where.remote),
            account=client.account or "", domain=_domain_of(msg), role=client.role,
            tls=f"{client.tls.version}/{client.tls.cipher}" if client.tls else "",
            tag=msg.tag)


def _domain_of(msg: ReceivedMessage) -> str:
    """Whose mail this is, for the event log's per-domain keys and retention: the
    sending account's domain, else the first recipient's."""
    if msg.client.account:
        return msg.client.account.rpartition("@")[2].lower()
    first = msg.envelope.recipients[0].address if msg.envelope.recipients else None
    return first.domain if first else ""
