"""The suppression list: entries filtered by sending domain, campaign and address, a
page at a time (oldest first; "next" follows the page's last id); add an entry (reason
`manual`); remove one after a confirmation page. admin.suppressions does each."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ...admin.errors import Invalid, NotFound
from ...admin.suppressions import Suppression, SuppressionPage
from ..auth import admin_of, flash, page, safe_next
from ..render import render

FILTERS = ("domain", "campaign", "address")
PAGE = 50


def _after(text: str) -> int | None:
    """?after=: the id a page starts after (an old or mangled link: the first page)."""
    return int(text) if text.isdigit() else None


def _scope(s: Suppression) -> str:
    return f"campaign {s.campaign!r} of {s.domain}" if s.campaign is not None else s.domain


@page
async def index(request: Request) -> Response:
    admin, q = admin_of(request), request.query_params
    chosen = {k: q.get(k, "").strip() for k in FILTERS}
    given = {k: v for k, v in chosen.items() if v}
    try:
        found = await admin.suppressions.list(
            chosen["domain"] or None, campaign=chosen["campaign"] or None,
            address=chosen["address"] or None, limit=PAGE, after=_after(q.get("after", "")))
        problem = None
    except Invalid as e:
        # A filter that is no address (or domain): said above the form it came from.
        found, problem = SuppressionPage([], None), str(e)
    here = "/admin/suppressions" + (f"?{request.url.query}" if request.url.query else "")
    more = "/admin/suppressions?" + urlencode({**given, "after": found.next}) \
        if found.next is not None else None
    first = "/admin/suppressions?" + urlencode(given) if q.get("after") else None
    return render(request, "suppressions.html", page=found, chosen=chosen, here=here,
                  problem=problem,
                  more=more, first=first, domains=await admin.domains.list())


@page
async def add(request: Request, form: dict[str, str]) -> Response:
    made = await admin_of(request).suppressions.add(
        form.get("domain", ""), form.get("address", ""),
        campaign=form.get("campaign", "").strip() or None, source="web admin")
    every = "all mail of " if made.campaign is None else ""
    return _back(request, form, f"Suppressed {made.address} for {every}{_scope(made)}.")


@page
async def confirm(request: Request) -> Response:
    """The page that asks before an entry goes (a plain link leads here: it works
    without script, and nothing is removed by a GET)."""
    q = request.query_params
    domain, address = q.get("domain", ""), q.get("address", "")
    campaign = q.get("campaign") or None
    found = await admin_of(request).suppressions.list(domain, campaign=campaign,
                                                      address=address)
    entry = next((s for s in found.suppressions if s.campaign == campaign), None)
    if entry is None:
        raise NotFound(f"{address} is not suppressed for "
                       + (f"campaign {campaign!r} of {domain}" if campaign else domain))
    return render(request, "suppression_remove.html", entry=entry, scope=_scope(entry),
                  back=safe_next(q.get("return")))


@page
async def remove(request: Request, form: dict[str, str]) -> Response:
    if form.get("confirm") != "yes":
        return _back(request, form, None)
    gone = await admin_of(request).suppressions.remove(
        form.get("domain", ""), form.get("address", ""),
        campaign=form.get("campaign") or None)
    return _back(request, form, f"Removed {gone.address} from the suppression list of "
                                f"{_scope(gone)}: mail to it is sent again.")


def _back(request: Request, form: dict[str, str], ok: str | None) -> RedirectResponse:
    """To the list page the form came from (its filters and page kept)."""
    if ok:
        flash(request, "ok", ok)
    return RedirectResponse(safe_next(form.get("return")), status_code=303)


ROUTES = [Route("/suppressions", index, methods=["GET"]),
          Route("/suppressions", add, methods=["POST"]),
          Route("/suppressions/remove", confirm, methods=["GET"]),
          Route("/suppressions/remove", remove, methods=["POST"])]
