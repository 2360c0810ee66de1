"""The ASGI application: FastAPI, whose OpenAPI 3.1 document (/api/v1/openapi.json) is
generated from the same pydantic models that validate each request, so the document
and the checks cannot drift apart. Every operation is one of admin/'s."""

from __future__ import annotations

from importlib.metadata import version

from fastapi import APIRouter, FastAPI

from ..admin import Admin
from ..metrics import Metrics
from . import errors
from .auth import RateLimiter, require_key
from .limits import LimitBody
from .routes import (
    accounts,
    aliases,
    campaigns,
    dkim,
    domains,
    events,
    keys,
    messages,
    metrics,
    queue,
    stats,
    suppressions,
    webhooks,
)

PREFIX = "/api/v1"
ROUTERS = (messages, domains, accounts, aliases, dkim, queue, events, stats, webhooks, keys,
           suppressions, campaigns)

DESCRIPTION = """\
Administer Mailwright and send mail over HTTP.

Every request carries an API key, `Authorization: Bearer mw_…` (make one with
`mailwright apikey create NAME --scope admin`). Scopes: **admin** (everything),
**domain-admin** (the listed domains), **send** (only `POST /messages`, from the listed
domains). Each key may make `[http] rate_limit` requests per minute (429 with
Retry-After beyond). Every error is `{"error": {"code", "message"}}`.
"""

def build(admin: Admin, rate_limit: int, metrics_of: Metrics | None = None,
          metrics_auth: str = "loopback", max_body: int | None = None) -> FastAPI:
    app = FastAPI(title="Mailwright API", version=version("mailwright"), description=DESCRIPTION,
                  openapi_url=f"{PREFIX}/openapi.json", docs_url=f"{PREFIX}/docs",
                  redoc_url=None)
    app.state.admin = admin
    app.state.limiter = RateLimiter(rate_limit)
    app.state.metrics = metrics_of
    app.state.metrics_auth = metrics_auth
    errors.install(app, require_key)
    if max_body is not None:
        app.add_middleware(LimitBody, limit=max_body)
    api = APIRouter(prefix=PREFIX, responses=errors.COMMON_RESPONSES)
    for module in ROUTERS:
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(metrics.router, responses=errors.COMMON_RESPONSES)
    return app
