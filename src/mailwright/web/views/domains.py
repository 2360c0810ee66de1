"""Domains: the list, add and remove; one domain's DNS records to publish, each with
its live check (admin.dns.check, the code behind `mailwright dns check`), its DKIM
key sets (generate a new one, switch signing to it, retire the old), and its
diagnostics on demand (admin.check, the report of `mailwright check` and of
GET /api/v1/domains/{d}/check)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...check.findings import CATEGORIES, Severity
from ...check.report import TITLE, score
from ...trust.records import Finding, Record
from ..auth import admin_of, back, page
from ..render import render


def check_key(record: Record) -> str:
    """The `what` of the check finding about this record (trust/records.py check)."""
    if record.type == "MX":
        return "MX"
    if record.value.startswith("v=spf1"):
        return "SPF"
    if "._domainkey." in record.name:
        return f"DKIM {record.name.split('._domainkey.')[0]}"
    for prefix, what in (("_dmarc.", "DMARC"), ("_mta-sts.", "MTA-STS"),
                         ("_smtp._tls.", "TLS-RPT")):
        if record.name.startswith(prefix):
            return what
    return ""


@page
async def index(request: Request) -> Response:
    return render(request, "domains.html", domains=await admin_of(request).domains.list())


@page
async def add(request: Request, form: dict[str, str]) -> Response:
    made = await admin_of(request).domains.add(form.get("name", ""))
    return back(request, f"/domains/{made.name}",
                f"Added {made.display}. Publish the records below, then check them.")


@page
async def remove(request: Request, form: dict[str, str]) -> Response:
    domain = request.path_params["domain"]
    if form.get("confirm") != "yes":
        return back(request, f"/domains/{domain}")
    gone = await admin_of(request).domains.remove(domain, force=form.get("force") == "yes")
    return back(request, "/domains", f"Removed {gone.display}.")


@page
async def show(request: Request) -> Response:
    admin = admin_of(request)
    domain = await admin.domains.get(request.path_params["domain"])
    records = await admin.dns.records(domain.name)
    checked = request.query_params.get("check") == "1"
    diagnosed = request.query_params.get("diagnose") == "1"
    return render(request, "domain.html", domain=domain, records=records,
                  keys=await admin.dkim.list(domain.name), check_key=check_key,
                  **(await _check(admin, domain.name) if checked else {}),
                  **(await _diagnose(request, domain.name) if diagnosed else
                     {"categories": TITLE, "only": "", "allow_private": False}))


@page
async def check(request: Request) -> Response:
    """The check results alone: htmx asks for them once the page is shown (a DNS
    round trip per record must not hold up the page); without script the page has a
    link that renders them inline."""
    admin = admin_of(request)
    domain = await admin.domains.get(request.path_params["domain"])
    records = await admin.dns.records(domain.name)
    return render(request, "domain_check.html", domain=domain, records=records,
                  check_key=check_key, **await _check(admin, domain.name))


async def _check(admin, domain: str) -> dict:
    report = await admin.dns.check(domain)
    by_what: dict[str, Finding] = {f.what: f for f in report.findings}
    return {"findings": by_what, "report": report}


@page
async def diagnostics(request: Request) -> Response:
    """The diagnostics alone, for htmx (the probes take seconds: the page is shown
    first); without script the form asks for the domain page with them inline."""
    admin = admin_of(request)
    domain = await admin.domains.get(request.path_params["domain"])
    return render(request, "domain_diagnostics.html", domain=domain,
                  **await _diagnose(request, domain.name))


async def _diagnose(request: Request, domain: str) -> dict:
    """admin.check's report of the domain, grouped by category as `mailwright check`
    prints it. ?only= narrows it to one category, ?allow_private=yes takes private and
    loopback addresses for fine (a server on a LAN)."""
    q = request.query_params
    only, allow_private = q.get("only", ""), q.get("allow_private") == "yes"
    report = await admin_of(request).check.domain(domain, only=[only] if only else (),
                                                  allow_private=allow_private)
    groups = [(TITLE[c], [f for f in report.findings if f.category == c])
              for c in CATEGORIES]
    return {"diagnosis": report, "groups": [(t, found) for t, found in groups if found],
            "score": score(report), "severities": list(Severity), "only": only,
            "allow_private": allow_private, "categories": TITLE}


@page
async def dkim(request: Request, form: dict[str, str]) -> Response:
    admin, domain = admin_of(request), request.path_params["domain"]
    action = form.get("action")
    if action == "generate":
        made = await admin.dkim.generate(domain, form.get("selector") or None)
        text = (f"Made key set {made.name}: publish its records"
                + (", it signs now." if made.active else
                   "; once they are visible, switch signing to it."))
    elif action in ("activate", "retire"):
        made = await getattr(admin.dkim, action)(domain, form.get("name", ""))
        text = (f"{made.domain} now signs with {made.name}; keep the old records until "
                "mail signed with them has arrived, then retire them." if action == "activate"
                else f"Retired {made.name}: remove its TXT records from DNS.")
    else:
        return back(request, f"/domains/{domain}")
    return back(request, f"/domains/{domain}", text)


ROUTES = [Route("/domains", index, methods=["GET"]),
          Route("/domains", add, methods=["POST"]),
          Route("/domains/{domain}", show, methods=["GET"]),
          Route("/domains/{domain}/check", check, methods=["GET"]),
          Route("/domains/{domain}/diagnostics", diagnostics, methods=["GET"]),
          Route("/domains/{domain}/remove", remove, methods=["POST"]),
          Route("/domains/{domain}/dkim", dkim, methods=["POST"])]
