"""The dashboard: messages received, sent, deferred, bounced and rejected per hour over
24 hours and per day over 30 days (charts; a table of the totals without script), the
queue size, the delivery success rate and the top rejection reasons. Every number is
admin.stats', counted from the event log."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..auth import admin_of, page
from ..render import render


def chart_data(traffic) -> dict:
    """What admin.js gives uPlot: x (bucket starts, unix seconds), the types in order
    (the JSON's object keys come out sorted) and one series per type."""
    return {"x": [traffic.start + i * traffic.step for i in range(traffic.buckets)],
            "types": list(traffic.types),
            "series": {t: list(traffic.counts[t]) for t in traffic.types}}


@page
async def index(request: Request) -> Response:
    admin = admin_of(request)
    domain = request.query_params.get("domain") or None
    day, month = (await admin.stats.traffic("24h", domain),
                  await admin.stats.traffic("30d", domain))
    return render(request, "dashboard.html", domain=domain,
                  domains=await admin.domains.list(),
                  summary=await admin.stats.summary(domain),
                  charts=[("24h", "Last 24 hours, per hour", day, chart_data(day)),
                          ("30d", "Last 30 days, per day", month, chart_data(month))])


ROUTES = [Route("/", index, methods=["GET"])]
