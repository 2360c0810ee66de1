"""/api/v1/stats: dashboard statistics counted from the event log (admin/stats.py,
docs/EVENTS.md "Statistics"). A domain-admin key sees its domains' numbers."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from ...admin.stats import SPANS
from ..auth import Manager, admin_of, domain_filter

router = APIRouter(prefix="/stats", tags=["Statistics"])

Domain = Annotated[str | None, Query(max_length=253, description="only this domain's "
                                     "events (a domain-admin key: one of its domains)")]
Span = Literal[tuple(SPANS)]          # "24h" | "30d"; others are a 422


class TrafficOut(BaseModel):
    start: float = Field(description="unix time of the first bucket's start (UTC hour "
                                     "or day)")
    step: int = Field(description="seconds per bucket: 3600 (24h) or 86400 (30d)")
    types: list[str] = Field(description="the series: received, sent, delivered, "
                                         "deferred, bounced, rejected")
    counts: dict[str, list[int]] = Field(description="per series, one count per bucket, "
                                                    "oldest first; the last is the current "
                                                    "hour or day")


class RejectionOut(BaseModel):
    reason: str = Field(description="the `reason` of the rejected events (docs/EVENTS.md)")
    count: int


class SummaryOut(BaseModel):
    queue_size: int = Field(description="queued recipients not yet delivered or bounced")
    delivered: int = Field(description="recipients delivered in the last 24 hours")
    failed: int = Field(description="recipients bounced in the last 24 hours")
    success_rate: float | None = Field(description="delivered / (delivered + failed); "
                                                   "null when there was neither")
    top_rejections: list[RejectionOut] = Field(
        description="the last 24 hours' rejections by reason, most first (10 at most)")


@router.get("/traffic", summary="Messages per hour (24h) or day (30d), by outcome")
async def traffic(request: Request, key: Manager, span: Span = "24h",
                  domain: Domain = None) -> TrafficOut:
    t = await admin_of(request).stats.traffic(span, domain_filter(key, domain))
    return TrafficOut(start=t.start, step=t.step, types=list(t.types),
                      counts={name: list(c) for name, c in t.counts.items()})


@router.get("/summary", summary="Queue size, the last 24 hours' outcomes and rejections")
async def summary(request: Request, key: Manager, domain: Domain = None) -> SummaryOut:
    s = await admin_of(request).stats.summary(domain_filter(key, domain))
    return SummaryOut(queue_size=s.queue_size, delivered=s.delivered, failed=s.failed,
                      success_rate=s.success_rate,
                      top_rejections=[RejectionOut(reason=reason, count=n)
                                      for reason, n in s.top_rejections])
