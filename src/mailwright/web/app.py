"""The web admin's ASGI application (mounted at /admin by site.py): Starlette routes
over admin/'s operations, pages from Jinja2 templates, its static files (htmx, uPlot,
our CSS and script: vendored, so it works offline and sends nothing to a CDN).

Every page but the login page needs a session (web/auth.py `page`); ROUTES lists
them all, and the tests walk that list, so a new page cannot be left open.
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from ..admin import Admin
from ..admin.errors import AdminError, Conflict, Forbidden, NotFound
from .auth import CsrfRefused
from .render import render
from .views import (
    accounts,
    campaigns,
    dashboard,
    domains,
    login,
    logs,
    queue,
    settings,
    suppressions,
    welcome,
)

STATIC = Path(__file__).parent / "static"

# Pages and actions that need a session: every route of these modules.
ROUTES: list[Route] = [*dashboard.ROUTES, *welcome.ROUTES, *domains.ROUTES,
                       *accounts.ROUTES, *queue.ROUTES, *logs.ROUTES, *campaigns.ROUTES,
                       *suppressions.ROUTES, *settings.ROUTES, *login.SESSION_ROUTES]
# What a browser may reach without one.
PUBLIC: list[BaseRoute] = [*login.ROUTES, Mount("/static", StaticFiles(directory=STATIC),
                                                name="static")]

# No inline scripts and nothing from elsewhere: a script injected into a page would
# not run. Styles may be inline (uPlot sizes its canvas with style attributes).
POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
          "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
          "form-action 'self'; base-uri 'none'")


class SecurityHeaders:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                headers += [(b"content-security-policy", POLICY.encode()),
                            (b"x-content-type-options", b"nosniff"),
                            (b"referrer-policy", b"same-origin"),
                            (b"cache-control", b"no-store")]
            await send(message)
        await self.app(scope, receive, with_headers)


STATUS = {NotFound: (404, "Not found"), Conflict: (409, "Conflict"),
          Forbidden: (403, "Forbidden")}


async def _admin_error(request: Request, exc: Exception) -> Response:
    status, title = next(((s, t) for kind, (s, t) in STATUS.items()
                          if isinstance(exc, kind)), (422, "Cannot do that"))
    return render(request, "error.html", status, title=title, message=str(exc))


async def _csrf_refused(request: Request, exc: Exception) -> Response:
    return render(request, "error.html", 403, title="Refused",
                  message="This form was not sent from a page of this admin session "
                          "(its CSRF token is missing or stale). Reload the page and "
                          "try again.")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return render(request, "error.html", exc.status_code, title=f"Error {exc.status_code}",
                  message=exc.detail)


def build(admin: Admin) -> Starlette:
    app = Starlette(routes=[*PUBLIC, *ROUTES],
                    middleware=[Middleware(SecurityHeaders)],
                    exception_handlers={AdminError: _admin_error, CsrfRefused: _csrf_refused,
                                        HTTPException: _http_error})
    app.state.admin = admin
    app.state.flashes = {}
    return app
