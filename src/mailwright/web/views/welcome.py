"""The first-run guide, one step a page: add the domain → publish its DNS records,
checked live until they pass → create the first mailboxes → send a test message and
watch it arrive (its events, as the log has them) → connect a mail program (the
settings it needs: admin.clients, what autoconfig serves)."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...admin.send import SendRequest
from ..auth import admin_of, back, page
from ..render import render

STEPS = ("Your domain", "DNS records", "Mailboxes", "Test message", "Mail programs")


def _step(domain: str, step: int, **more: str) -> str:
    return "/welcome?" + urlencode({"domain": domain, "step": step, **more})


def outcome(events) -> str:
    """arrived | failed | "" (not yet) for a test message's events: stored in a local
    mailbox when accepted (its `local` copies), or relayed and delivered or bounced."""
    if any(e.type == "bounced" for e in events):
        return "failed"
    if any(e.type == "delivered" or (e.type == "accepted" and e.data.get("local")
                                     and not e.data.get("remote")) for e in events):
        return "arrived"
    return ""


@page
async def wizard(request: Request) -> Response:
    admin = admin_of(request)
    q = request.query_params
    domain = q.get("domain", "")
    step = int(q["step"]) if q.get("step", "").isdigit() else 1
    step = min(max(step, 1), len(STEPS)) if domain else 1
    shown: dict = {}
    if domain:
        shown["domain"] = await admin.domains.get(domain)
        domain = shown["domain"].name
    if step == 2:
        shown["records"] = await admin.dns.records(domain)
    if step >= 3:
        shown["accounts"] = await admin.accounts.list(domain)
    if step == 4 and (sent := q.get("sent")):
        shown["sent"] = sent
        events = list(reversed(
            (await admin.events.search(message_id=sent, limit=100)).events))
        shown.update(events=events, outcome=outcome(events))
    if step == 5:
        # The same settings autoconfig and autodiscover hand to mail clients.
        shown["clients"] = await admin.clients.settings(domain=domain)
    return render(request, "welcome.html", step=step, steps=STEPS, **shown)


@page
async def add_domain(request: Request, form: dict[str, str]) -> Response:
    made = await admin_of(request).domains.add(form.get("name", ""))
    return back(request, _step(made.name, 2), f"Added {made.display}.")


@page
async def add_mailbox(request: Request, form: dict[str, str]) -> Response:
    domain = form.get("domain", "")
    made = await admin_of(request).accounts.add(
        f"{form.get('local', '').strip()}@{domain}", form.get("password", ""))
    return back(request, _step(domain, 3), f"Created {made.address}.")


@page
async def send_test(request: Request, form: dict[str, str]) -> Response:
    domain, sender = form.get("domain", ""), form.get("from", "")
    to = form.get("to", "").strip() or sender
    result = await admin_of(request).send(
        SendRequest(from_=sender, to=[to], subject="Mailwright test message",
                    text="This message was sent from the Mailwright web admin's "
                         "first-run guide.\r\n", tag="welcome-test"),
        client_ip=request.client.host if request.client else "")
    return back(request, _step(domain, 4, sent=result.id), f"Sent to {to}.")


ROUTES = [Route("/welcome", wizard, methods=["GET"]),
          Route("/welcome/domain", add_domain, methods=["POST"]),
          Route("/welcome/mailbox", add_mailbox, methods=["POST"]),
          Route("/welcome/send", send_test, methods=["POST"])]
