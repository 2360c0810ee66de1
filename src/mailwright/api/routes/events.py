"""/api/v1/events: the event log (docs/EVENTS.md), searched a page at a time (newest
first, an opaque cursor to the next page) or exported whole as JSON Lines or CSV. A
domain-admin key sees its domains' events."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from ...admin.apikeys import ApiKey
from ...store.events import StoredEvent
from ..auth import Manager, admin_of, domain_filter

router = APIRouter(prefix="/events", tags=["Events"])

Time = Annotated[str | None, Query(max_length=64, description="seconds since the epoch, "
                                   "or ISO 8601 (UTC without a zone)")]
Text = Annotated[str | None, Query(min_length=1, max_length=998)]
MEDIA = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}


class EventOut(BaseModel):
    id: int
    ts: float
    type: str
    session: str | None
    message_id: str | None
    address: str | None
    domain: str | None
    tag: str | None
    data: dict[str, Any]

    @classmethod
    def of(cls, e: StoredEvent) -> EventOut:
        return cls(id=e.id, ts=e.ts, type=e.type, session=e.session,
                   message_id=e.message_id, address=e.address, domain=e.domain, tag=e.tag,
                   data=e.data)


class EventPageOut(BaseModel):
    events: list[EventOut] = Field(description="newest first")
    next: str | None = Field(description="pass as cursor for the next page; null: the last")


def _filters(key: ApiKey, since, until, type, message_id, address, domain, tag) -> dict:
    return dict(since=since, until=until, types=type, message_id=message_id,
                address=address, domain=domain_filter(key, domain), tag=tag)


@router.get("", summary="Search events")
async def search(request: Request, key: Manager, since: Time = None, until: Time = None,
                 type: Annotated[list[str] | None, Query(max_length=100)] = None,
                 message_id: Text = None, address: Text = None,
                 domain: Annotated[str | None, Query(max_length=253)] = None,
                 tag: Text = None,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                 cursor: Annotated[str | None, Query(max_length=512)] = None) -> EventPageOut:
    page = await admin_of(request).events.search(
        **_filters(key, since, until, type, message_id, address, domain, tag),
        limit=limit, cursor=cursor)
    return EventPageOut(events=[EventOut.of(e) for e in page.events], next=page.next)


@router.get("/export", summary="Export every matching event (JSON Lines or CSV)",
            response_class=StreamingResponse,
            responses={200: {"content": {"application/x-ndjson": {"schema": {"type": "string"}},
                                         "text/csv": {"schema": {"type": "string"}}},
                             "description": "one event per line, newest first"}})
async def export(request: Request, key: Manager,
                 format: Literal["jsonl", "csv"] = "jsonl",
                 since: Time = None, until: Time = None,
                 type: Annotated[list[str] | None, Query(max_length=100)] = None,
                 message_id: Text = None, address: Text = None,
                 domain: Annotated[str | None, Query(max_length=253)] = None,
                 tag: Text = None) -> StreamingResponse:
    # Checked before the first byte goes out: a bad filter is still a 422.
    chunks = await admin_of(request).events.export(
        format=format, **_filters(key, since, until, type, message_id, address, domain, tag))
    return StreamingResponse(chunks, media_type=MEDIA[format], headers={
        "Content-Disposition": f'attachment; filename="events.{format}"'})
