"""POST /api/v1/messages: send a message as an authenticated submission client would
(admin/send.py): the same sender rules, DKIM signing, local delivery and queue as SMTP
on 587, one answer per recipient."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from ...admin.send import Attachment, NoRecipientAccepted, RecipientResult, SendRequest
from ..auth import Caller, admin_of
from ..errors import ApiError, ErrorBody
from ..jsonbody import JsonRoute

router = APIRouter(prefix="/messages", tags=["Sending"], route_class=JsonRoute)

Address = Annotated[str, Field(min_length=3, max_length=998)]
MAX_RECIPIENTS = 1000


class AttachmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1, max_length=255)
    content_type: str = Field("application/octet-stream", max_length=255,
                              pattern=r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+$")
    content: str = Field(description="the file, base64 (RFC 4648)")


class MessageIn(BaseModel):
    """Either structured fields (from, to/cc/bcc, subject, text and/or html, attachments,
    headers) or `raw`: a whole RFC 5322 message, base64, with its envelope recipients in
    to/cc/bcc (the header fields of a raw message are not read for recipients)."""
    # A misspelt field ("bbc", "attachment") would otherwise be dropped without a word,
    # and the message sent without it: refused instead (422 naming it).
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    from_: Address | None = Field(None, alias="from",
                                  description='"addr" or "Name <addr>"; required '
                                              "unless raw")
    to: list[Address] = Field([], max_length=MAX_RECIPIENTS)
    cc: list[Address] = Field([], max_length=MAX_RECIPIENTS)
    bcc: list[Address] = Field([], max_length=MAX_RECIPIENTS,
                               description="envelope recipients only, never in the header")
    subject: str = Field("", max_length=998)
    text: str | None = None
    html: str | None = None
    attachments: list[AttachmentIn] = Field([], max_length=100)
    headers: dict[str, str] = Field({}, max_length=100,
                                    description="extra header fields (not From, To, Cc, "
                                                "Bcc, Subject, Date, MIME or trace fields)")
    tag: str | None = Field(None, min_length=1, max_length=128,
                            description="kept with the message: its events carry it")
    campaign: str | None = Field(None, min_length=1, max_length=128,
                                 description="campaign mail: open and click tracking and "
                                             "one-click unsubscribe; the name is the tag")
    envelope_from: Address | None = Field(None, description="MAIL FROM; default: From")
    raw: str | None = Field(None, description="a whole RFC 5322 message, base64")


class RecipientOut(BaseModel):
    address: str
    accepted: bool
    status: str = Field(description="RFC 3463 enhanced status, e.g. 2.1.5 or 5.1.1")
    text: str
    suppressed: str | None = Field(None, description="accepted but not sent: the sending "
                                   "domain suppresses this address (the reason: "
                                   "unsubscribe, bounce, complaint, manual)")


class SentOut(BaseModel):
    id: str = Field(description="the queue id: events and /queue use it")
    message_id: str = Field(description="the Message-ID header field")
    size: int
    recipients: list[RecipientOut]


def _recipient(r: RecipientResult) -> RecipientOut:
    return RecipientOut(address=r.address, accepted=r.accepted, status=r.status, text=r.text,
                        suppressed=r.suppressed)


def _raw(text: str) -> bytes:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(422, "body.raw: not valid base64") from None


@router.post("", status_code=201, summary="Send a message",
             responses={503: {"model": ErrorBody,
                              "description": "not taken now (storage trouble): try again"}})
async def send(body: MessageIn, request: Request, key: Caller) -> SentOut:
    req = SendRequest(
        from_=body.from_, to=body.to, cc=body.cc, bcc=body.bcc, subject=body.subject,
        text=body.text, html=body.html,
        attachments=[Attachment(a.filename, a.content_type, a.content)
                     for a in body.attachments],
        headers=body.headers, tag=body.tag, campaign=body.campaign,
        envelope_from=body.envelope_from,
        raw=_raw(body.raw) if body.raw is not None else None)
    try:
        sent = await admin_of(request).send(
            req, client_ip=request.client.host if request.client else "",
            allowed_domains=key.sender_domains, campaigns=key.campaigns)
    except NoRecipientAccepted as e:
        refused = "; ".join(f"{r.address}: {r.status} {r.text}" for r in e.recipients)
        # RFC 3463: when every refusal is temporary (4.x.x, e.g. a full mailbox) the
        # same request may succeed later: 503, not a 4xx that tells the client not to
        # retry.
        temporary = all(r.status.startswith("4") for r in e.recipients)
        raise ApiError(503 if temporary else 422, f"no recipient accepted: {refused}",
                       code="no_recipient_accepted",
                       headers={"Retry-After": "300"} if temporary else None) from None
    return SentOut(id=sent.id, message_id=sent.message_id, size=sent.size,
                   recipients=[_recipient(r) for r in sent.recipients])
