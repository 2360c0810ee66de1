"""Accounts and aliases of a domain (or of all): create, reset a password, set the
quota (with a bar of what is used), remove after a confirmation."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...admin.validate import quota_size
from ..auth import admin_of, back, page
from ..render import render


@page
async def index(request: Request) -> Response:
    admin = admin_of(request)
    domain = request.query_params.get("domain") or None
    accounts = await admin.accounts.list(domain)
    quotas = {a.address: await admin.accounts.quota(a.address) for a in accounts}
    return render(request, "accounts.html", domain=domain, accounts=accounts, quotas=quotas,
                  aliases=await admin.aliases.list(domain),
                  domains=await admin.domains.list())


def _here(form: dict[str, str]) -> str:
    domain = form.get("domain", "")
    return "/accounts" + (f"?domain={domain}" if domain else "")


@page
async def add(request: Request, form: dict[str, str]) -> Response:
    made = await admin_of(request).accounts.add(form.get("address", ""),
                                                form.get("password", ""))
    return back(request, _here(form), f"Created {made.address}.")


@page
async def change(request: Request, form: dict[str, str]) -> Response:
    accounts, address = admin_of(request).accounts, form.get("address", "")
    action = form.get("action")
    if action == "password":
        done = await accounts.set_password(address, form.get("password", ""))
        text = f"New password set for {done.address}."
    elif action == "quota":
        quota = await accounts.set_quota(address, quota_size(form.get("quota", "")))
        text = f"Quota of {quota.address}: " + (f"{quota.limit} octets" if quota.limit
                                                 else "none")
    elif action == "remove" and form.get("confirm") == "yes":
        text = f"Removed {(await accounts.remove(address)).address} and its mail."
    else:
        text = "Nothing done: tick the confirmation to remove an account."
    return back(request, _here(form), text)


@page
async def alias(request: Request, form: dict[str, str]) -> Response:
    aliases = admin_of(request).aliases
    if form.get("action") == "remove":
        gone = await aliases.remove(form.get("source", ""))
        return back(request, _here(form), f"Removed alias {gone.source}.")
    targets = [t for t in form.get("targets", "").replace(",", " ").split() if t]
    made = await aliases.add(form.get("source", ""), targets)
    return back(request, _here(form), f"Alias {made.source} → {', '.join(made.targets)}.")


ROUTES = [Route("/accounts", index, methods=["GET"]),
          Route("/accounts", add, methods=["POST"]),
          Route("/accounts/change", change, methods=["POST"]),
          Route("/aliases", alias, methods=["POST"])]
