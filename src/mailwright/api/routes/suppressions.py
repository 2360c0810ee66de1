"""/api/v1/suppressions: the addresses a sending domain no longer sends to (for all its
mail, or one campaign's). A domain's list is its domain-admins'; listing every domain's
is for admin keys."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from ...admin.suppressions import Suppression
from ..auth import Manager, admin_of, domain_filter, managed_domain
from ..jsonbody import JsonRoute

router = APIRouter(prefix="/suppressions", tags=["Suppressions"], route_class=JsonRoute)

Reason = Literal["unsubscribe", "bounce", "complaint", "manual"]
Campaign = Annotated[str | None, Query(min_length=1, max_length=128,
                                       description="a campaign's entries; none: the "
                                                   "domain-wide ones")]


class SuppressionOut(BaseModel):
    id: int
    domain: str = Field(description="the sending domain")
    address: str
    campaign: str | None = Field(description="null: every message of the domain")
    reason: Reason
    source: str = Field(description="what added it: a bounce's reply, the unsubscribe "
                                    "method, ...")
    created: float

    @classmethod
    def of(cls, s: Suppression) -> SuppressionOut:
        return cls(id=s.id, domain=s.domain, address=s.address, campaign=s.campaign,
                   reason=s.reason, source=s.source, created=s.created)


class SuppressionPageOut(BaseModel):
    suppressions: list[SuppressionOut]
    next: int | None = Field(description="pass as `after` for the next page; null: last")


class SuppressionIn(BaseModel):
    domain: str = Field(min_length=1, max_length=253, description="the sending domain")
    address: str = Field(min_length=3, max_length=320)
    campaign: str | None = Field(None, min_length=1, max_length=128,
                                 description="only this campaign's mail; null: all of it")
    reason: Reason = "manual"
    source: str = Field("", max_length=500, description="a note on where it came from")


@router.get("", summary="List suppressed addresses, a page at a time")
async def list_suppressions(
        request: Request, key: Manager,
        domain: Annotated[str | None, Query(max_length=253,
                                            description="required for domain-admin keys "
                                                        "of several domains")] = None,
        campaign: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
        address: Annotated[str | None, Query(min_length=3, max_length=320)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        after: Annotated[int | None, Query(ge=0, le=2**62,
                                           description="the `next` of the previous "
                                                       "page")] = None
        ) -> SuppressionPageOut:
    page = await admin_of(request).suppressions.list(
        domain_filter(key, domain), campaign=campaign, address=address, limit=limit, after=after)
    return SuppressionPageOut(suppressions=[SuppressionOut.of(s) for s in page.suppressions],
                              next=page.next)


@router.post("", status_code=201,
             summary="Suppress an address (the entry already there is returned as it is)")
async def add(body: SuppressionIn, request: Request, key: Manager) -> SuppressionOut:
    name = managed_domain(key, body.domain)
    return SuppressionOut.of(await admin_of(request).suppressions.add(
        name, body.address, campaign=body.campaign, reason=body.reason, source=body.source))


@router.delete("/{domain}/{address}", summary="Send to the address again")
async def remove(domain: str, address: str, request: Request, key: Manager,
                 campaign: Campaign = None) -> SuppressionOut:
    name = managed_domain(key, domain)
    return SuppressionOut.of(await admin_of(request).suppressions.remove(
        name, address, campaign=campaign))
