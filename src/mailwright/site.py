"""The HTTP site served on the `http`/`https` listeners: one ASGI application made of
independent parts, each mounted here and nowhere else.

- /api/v1/…, /metrics: the JSON API (api/), API keys;
- /admin/…: the web admin (web/), admin accounts and browser sessions;
- the public endpoints (public/): what recipients' mail clients and users' mail
  programs reach without any credential (tracking, unsubscribe, client autoconfig,
  the ACME CA's HTTP-01 challenges).

Public routes are plain Starlette routes (no validation layer: they are the hot path
of a campaign); whatever no route matches goes to the API, so that it gets the API's
JSON 404 (a Mount("/") would not: its pattern cannot match a path with a newline).
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Router

from .admin import Admin
from .api import app as api_app
from .metrics import Metrics
from .public import acme, autoconfig, tracking
from .web import app as web_app


def build(admin: Admin, *, rate_limit: int, metrics_of: Metrics | None,
          metrics_auth: str, max_body: int) -> Router:
    api = api_app.build(admin, rate_limit, metrics_of, metrics_auth, max_body)
    # The tracking routes first: a campaign's pixel loads and clicks are most of the
    # requests, and a router tries its routes in order.
    routes: list[BaseRoute] = [*tracking.routes(admin),
                               Mount("/admin", app=web_app.build(admin)),
                               acme.route(admin.ctx.config.data_dir),
                               *autoconfig.routes(admin)]
    return Router(routes=routes, default=api)
