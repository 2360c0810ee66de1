"""Settings: the event retention policy (global and per domain: from the config file,
shown with the keys that change it, since the server reads them only there), webhooks
(add, test-send, enable/disable, remove, each one's delivery log) and HTTP API keys (create: the
token is on the answer to the post and nowhere else; revoke)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...admin.events import KNOWN_TYPES
from ..auth import admin_of, back, flash, page
from ..render import render


async def _page(request: Request, **shown) -> Response:
    admin = admin_of(request)
    return render(request, "settings.html", events=admin.ctx.config.events,
                  webhooks=await admin.webhooks.list(), keys=await admin.api_keys.list(),
                  domains=await admin.domains.list(), types=KNOWN_TYPES, **shown)


@page
async def index(request: Request) -> Response:
    return await _page(request)


@page
async def add_webhook(request: Request, form: dict[str, str]) -> Response:
    events = [t for t in form.get("events", "").replace(",", " ").split() if t] or ["*"]
    made = await admin_of(request).webhooks.add(form.get("url", ""),
                                                form.get("domain") or None, events)
    # The signing secret is shown on this answer only: the page is not redirected to.
    return await _page(request, secret=("webhook", made.webhook.url, made.secret))


@page
async def webhook_action(request: Request, form: dict[str, str]) -> Response:
    hooks, hook_id = admin_of(request).webhooks, request.path_params["id"]
    action = form.get("action")
    if action == "test":
        sent = await hooks.test(hook_id)
        if sent.ok:
            return back(request, "/settings", f"Test sent to {sent.webhook.url}: "
                                              f"HTTP {sent.status}.")
        flash(request, "error", f"Test to {sent.webhook.url} failed: {sent.error}")
        return back(request, "/settings")
    if action not in ("enable", "disable", "remove"):
        return back(request, "/settings")
    done = await getattr(hooks, action)(hook_id)
    return back(request, "/settings", f"Webhook {done.id} ({done.url}): {action}d.")


@page
async def webhook_log(request: Request) -> Response:
    hooks, hook_id = admin_of(request).webhooks, request.path_params["id"]
    before = request.query_params.get("before")
    deliveries = await hooks.deliveries(hook_id, 50, int(before) if before and
                                        before.isdigit() else None)
    return render(request, "webhook.html", webhook=await hooks.show(hook_id),
                  deliveries=deliveries)


@page
async def create_key(request: Request, form: dict[str, str]) -> Response:
    domains = [d for d in form.get("domains", "").replace(",", " ").split() if d]
    made = await admin_of(request).api_keys.create(form.get("name", ""),
                                                   form.get("scope", ""), domains)
    return await _page(request, secret=("API key", made.key.name, made.token))


@page
async def revoke_key(request: Request, form: dict[str, str]) -> Response:
    gone = await admin_of(request).api_keys.revoke(request.path_params["id"])
    return back(request, "/settings", f"Revoked API key {gone.name}.")


ROUTES = [Route("/settings", index, methods=["GET"]),
          Route("/settings/webhooks", add_webhook, methods=["POST"]),
          Route("/settings/webhooks/{id:int}", webhook_log, methods=["GET"]),
          Route("/settings/webhooks/{id:int}", webhook_action, methods=["POST"]),
          Route("/settings/keys", create_key, methods=["POST"]),
          Route("/settings/keys/{id:int}/revoke", revoke_key, methods=["POST"])]
