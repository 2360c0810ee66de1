"""/api/v1/campaigns: what became of campaign mail (admin/campaigns.py defines every
figure and rate): the campaigns in the event log, one campaign's report, a domain's
report over all its campaigns; each report in all and per UTC day, as JSON or CSV. A
domain's campaigns are its domain-admins'."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from ...admin.campaigns import Figures, Report, report_csv
from ...store.campaigns import CampaignRow
from ..auth import Manager, admin_of, domain_filter, managed_domain

router = APIRouter(tags=["Campaigns"])

CSV = {"text/csv": {"schema": {"type": "string"}}}
Format = Annotated[Literal["json", "csv"], Query(description="csv: the per-day figures "
                                                             "and a total row")]


class CampaignOut(BaseModel):
    name: str
    domain: str = Field(description="the sending domain")
    messages: int
    recipients: int
    first: float
    last: float

    @classmethod
    def of(cls, c: CampaignRow) -> CampaignOut:
        return cls(name=c.name, domain=c.domain, messages=c.messages,
                   recipients=c.recipients, first=c.first, last=c.last)


class FiguresOut(BaseModel):
    sent: int
    delivered: int
    bounced: int
    suppressed: int
    opened: int = Field(description="unique opens by people (machine opens left out)")
    opened_all: int = Field(description="unique opens, machine opens included")
    clicked: int = Field(description="unique clicks by people")
    clicked_all: int
    unsubscribed: int
    bounce_rate: float | None = Field(description="bounced / sent")
    open_rate: float | None = Field(description="opened / delivered")
    open_rate_all: float | None = Field(description="opened_all / delivered")
    click_rate: float | None = Field(description="CTR: clicked / delivered")
    click_rate_all: float | None = Field(description="clicked_all / delivered")
    click_to_open: float | None = Field(description="clicked / opened")
    unsubscribe_rate: float | None = Field(description="unsubscribed / delivered")

    @classmethod
    def of(cls, f: Figures) -> FiguresOut:
        return cls(**vars(f))


class DayOut(BaseModel):
    day: str = Field(description="YYYY-MM-DD, UTC")
    figures: FiguresOut


class ReportOut(BaseModel):
    name: str | None = Field(description="null: every campaign of the domain")
    domain: str | None = Field(description="null: every sending domain")
    messages: int
    first: float | None
    last: float | None
    figures: FiguresOut
    days: list[DayOut] = Field(description="oldest first, days with events only")


def _render(report: Report, format: str, filename: str) -> ReportOut | Response:
    if format == "csv":
        return Response(report_csv(report), media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="{filename}.csv"'})
    return ReportOut(name=report.name, domain=report.domain, messages=report.messages,
                     first=report.first, last=report.last,
                     figures=FiguresOut.of(report.figures),
                     days=[DayOut(day=d.day, figures=FiguresOut.of(d.figures))
                           for d in report.days])


@router.get("/campaigns", summary="Campaigns in the event log, last sent first")
async def list_campaigns(request: Request, key: Manager,
                         domain: Annotated[str | None, Query(max_length=253)] = None
                         ) -> list[CampaignOut]:
    found = await admin_of(request).campaigns.list(domain_filter(key, domain))
    return [CampaignOut.of(c) for c in found]


@router.get("/campaigns/{name:path}", summary="A campaign's report", response_model=ReportOut,
            responses={200: {"content": CSV}})
async def campaign_report(request: Request, key: Manager,
                          name: Annotated[str, Path(min_length=1, max_length=128)],
                          domain: Annotated[str | None, Query(max_length=253)] = None,
                          format: Format = "json") -> ReportOut | Response:
    report = await admin_of(request).campaigns.report(name, domain_filter(key, domain))
    return _render(report, format, "campaign")


@router.get("/domains/{domain}/campaign-report",
            summary="A domain's report over all its campaigns", response_model=ReportOut,
            responses={200: {"content": CSV}})
async def domain_report(domain: str, request: Request, key: Manager,
                        format: Format = "json") -> ReportOut | Response:
    report = await admin_of(request).campaigns.domain_report(managed_domain(key, domain))
    return _render(report, format, "campaigns")
