"""/api/v1/queue: the outbound queue. A domain-admin key sees and steers the messages
its domains sent."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from ...admin.apikeys import ApiKey
from ...admin.queue import QueueEntry, QueueFilter, Rescheduled
from ...store.queue import QueuedMessage
from ..auth import Manager, admin_of
from ..errors import ApiError

router = APIRouter(prefix="/queue", tags=["Queue"])

State = Literal["pending", "deferred", "held", "delivered", "bounced", "suppressed"]


class RecipientOut(BaseModel):
    address: str
    state: State
    attempts: int
    next_attempt: float | None = Field(description="when it is tried next (deferred)")
    last_reply: str | None
    notify: str | None = Field(description="RFC 3461 NOTIFY")


class MessageOut(BaseModel):
    message_id: str
    mail_from: str = Field(description='the envelope sender; "" for the null sender')
    size: int
    created: float
    envid: str | None
    ret: str | None
    recipients: list[RecipientOut]

    @classmethod
    def of(cls, m: QueuedMessage) -> MessageOut:
        return cls(message_id=m.message_id, mail_from=m.mail_from, size=m.size,
                   created=m.created, envid=m.envid, ret=m.ret,
                   recipients=[RecipientOut(address=r.address, state=r.state,
                                            attempts=r.attempts,
                                            next_attempt=r.next_attempt
                                            if r.state == "deferred" else None,
                                            last_reply=r.last_reply, notify=r.notify)
                               for r in m.recipients])


class QueueOut(BaseModel):
    messages: list[MessageOut]
    by_state: dict[str, int] = Field(description="recipients per state")
    by_destination: dict[str, int] = Field(description="recipients per domain")


class AttemptOut(BaseModel):
    ts: float
    address: str
    remote: str
    tls: str | None
    reply: str


class EntryOut(BaseModel):
    message: MessageOut
    attempts: list[AttemptOut]


class ChangedOut(BaseModel):
    recipients: int = Field(description="how many recipients changed")
    state: str


async def _entry(request: Request, key: ApiKey, message_id: str) -> QueueEntry:
    """The message and its attempts; 404 for one the key may not see, as for one that
    is not there (send keys never get here: Manager)."""
    entry = await admin_of(request).queue.show(message_id)
    if not key.may_manage(entry.message.mail_from.rpartition("@")[2].lower()):
        raise ApiError(404, f"no queued message {message_id}")
    return entry


async def _visible(request: Request, key: ApiKey, message_id: str) -> None:
    """As _entry, for the operations that need nothing of the message: an admin key
    sees every one, so nothing is read for it."""
    if not key.is_admin:
        await _entry(request, key, message_id)


def _changed(r: Rescheduled) -> ChangedOut:
    return ChangedOut(recipients=r.recipients, state=r.state)


@router.get("", summary="Queued messages, with filters")
async def list_queue(request: Request, key: Manager,
                     state: State | None = None,
                     sender: Annotated[str | None, Query(max_length=320)] = None,
                     domain: Annotated[str | None, Query(max_length=253,
                                       description="a recipient's domain")] = None,
                     limit: Annotated[int, Query(ge=1, le=10000)] = 1000) -> QueueOut:
    where = QueueFilter(state=state, sender=sender,
                        recipient_domain=domain.lower() if domain else None,
                        sender_domains=key.sender_domains)
    overview = await admin_of(request).queue.list(where, limit)
    return QueueOut(messages=[MessageOut.of(m) for m in overview.messages],
                    by_state=overview.by_state, by_destination=dict(overview.by_destination))


@router.get("/{message_id}", summary="One queued message and its delivery attempts")
async def show(message_id: str, request: Request, key: Manager) -> EntryOut:
    entry = await _entry(request, key, message_id)
    return EntryOut(message=MessageOut.of(entry.message),
                    attempts=[AttemptOut(ts=a.ts, address=a.address, remote=a.remote,
                                         tls=a.tls, reply=a.reply) for a in entry.attempts])


@router.get("/{message_id}/raw", summary="The message's text, queued or recently finished",
            response_class=Response,
            responses={200: {"content": {"message/rfc822": {"schema": {"type": "string"}}},
                             "description": "as relayed; finished messages are kept for "
                                            "[events] message_retention_days"}})
async def raw(message_id: str, request: Request, key: Manager) -> Response:
    text = await admin_of(request).queue.raw(message_id)
    if not key.may_manage(text.mail_from.rpartition("@")[2].lower()):
        raise ApiError(404, f"no queued message {message_id}")
    return Response(text.content, media_type="message/rfc822")


@router.post("/{message_id}/retry", summary="Try its waiting recipients now")
async def retry(message_id: str, request: Request, key: Manager) -> ChangedOut:
    await _visible(request, key, message_id)
    return _changed(await admin_of(request).queue.retry(message_id))


@router.post("/{message_id}/hold", summary="Stop delivery attempts until released")
async def hold(message_id: str, request: Request, key: Manager) -> ChangedOut:
    await _visible(request, key, message_id)
    return _changed(await admin_of(request).queue.hold(message_id))


@router.post("/{message_id}/release", summary="Resume a held message now")
async def release(message_id: str, request: Request, key: Manager) -> ChangedOut:
    await _visible(request, key, message_id)
    return _changed(await admin_of(request).queue.release(message_id))


@router.post("/{message_id}/bounce", summary="Give up: bounce it to the sender now",
             description="Its waiting recipients fail with 5.0.0; the sender gets the "
                         "DSN they asked for (RFC 3464); the message leaves the queue.")
async def bounce(message_id: str, request: Request, key: Manager) -> ChangedOut:
    await _visible(request, key, message_id)
    return _changed(await admin_of(request).queue.bounce(message_id))


@router.delete("/{message_id}", summary="Drop it from the queue, without a bounce")
async def delete(message_id: str, request: Request, key: Manager) -> ChangedOut:
    entry = await _entry(request, key, message_id)
    await admin_of(request).queue.delete(message_id)
    return ChangedOut(recipients=len(entry.message.recipients), state="deleted")
