"""Campaign reports (issue 17): the campaigns in the event log, and one campaign's
report (or every campaign of a domain together): its figures and rates, a chart of the
per-day series (uPlot; a table of the same days without script) and the CSV export.
Every figure is admin.campaigns' (its docstring defines them)."""

from __future__ import annotations

import calendar
import re
import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...admin.campaigns import Report, report_csv
from ...admin.errors import Invalid
from ..auth import admin_of, page
from ..render import render

# The per-day series the chart draws (the table below it has every column).
SERIES = ("delivered", "opened", "clicked", "unsubscribed", "bounced")


def chart_data(report: Report) -> dict:
    """What admin.js gives uPlot (as the dashboard's): x (each day's start, unix
    seconds, UTC), the series in order and one list of counts per series."""
    return {"x": [calendar.timegm(time.strptime(d.day, "%Y-%m-%d")) for d in report.days],
            "types": list(SERIES),
            "series": {s: [getattr(d.figures, s) for d in report.days] for s in SERIES}}


async def _report(request: Request) -> Report:
    """The report the query names: ?name= (and ?domain=, the sending domain) for one
    campaign, ?domain= alone for every campaign of a local domain."""
    campaigns, q = admin_of(request).campaigns, request.query_params
    name, domain = q.get("name"), q.get("domain") or None
    if name is None:
        if domain is None:
            raise Invalid("name a campaign (?name=) or a domain (?domain=)")
        return await campaigns.domain_report(domain)
    return await campaigns.report(name, domain)


@page
async def index(request: Request) -> Response:
    admin = admin_of(request)
    domain = request.query_params.get("domain") or None
    return render(request, "campaigns.html", domain=domain,
                  campaigns=await admin.campaigns.list(domain),
                  domains=await admin.domains.list())


@page
async def report(request: Request) -> Response:
    found = await _report(request)
    return render(request, "campaign.html", report=found, data=chart_data(found),
                  query=request.url.query)


@page
async def export(request: Request) -> Response:
    found = await _report(request)
    # The file's name says what it is; anything but a few safe characters becomes "-"
    # (a quote or a line break in a campaign's name must not reach the header).
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", found.name or f"all-{found.domain}").strip("-")
    return Response(report_csv(found), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="campaign-{stem or "report"}.csv"'})


ROUTES = [Route("/campaigns", index, methods=["GET"]),
          Route("/campaigns/report", report, methods=["GET"]),
          Route("/campaigns/report.csv", export, methods=["GET"])]
