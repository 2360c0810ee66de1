"""Logging in and out."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ...admin.admins import LockedOut
from ...admin.errors import Invalid
from ..auth import (
    COOKIE,
    LOGIN_COOKIE,
    LOGIN_TTL,
    PATH,
    admin_of,
    login_token_ok,
    new_login_token,
    page,
    safe_next,
    set_cookie,
)
from ..render import render


def _form(request: Request, status: int = 200, error: str = "", name: str = "",
          next: str = "") -> Response:
    token = new_login_token()
    response = render(request, "login.html", status, login_token=token, error=error,
                      name=name, next=safe_next(next or request.query_params.get("next")))
    set_cookie(request, response, LOGIN_COOKIE, token, max_age=LOGIN_TTL)
    return response


async def login_page(request: Request) -> Response:
    return _form(request)


async def login(request: Request) -> Response:
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    name, target = fields.get("name", ""), fields.get("next", "")
    if not login_token_ok(request, fields.get("login_token")):
        return _form(request, 403, "This login form is stale or was not sent from this "
                     "page: please try again.", name, target)
    ip = request.client.host if request.client else ""
    try:
        session = await admin_of(request).admins.login(name, fields.get("password", ""), ip)
    except LockedOut as e:
        return _form(request, 429, str(e), name, target)
    except Invalid as e:
        return _form(request, 401, str(e), name, target)
    response = RedirectResponse(safe_next(target), status_code=303)
    # A session cookie (no Max-Age): it ends with the browser, or earlier on the server.
    set_cookie(request, response, COOKIE, session.token)
    response.delete_cookie(LOGIN_COOKIE, path=PATH)
    return response


@page
async def logout(request: Request, form: dict[str, str]) -> Response:
    await admin_of(request).admins.logout(request.state.session.token)
    response = RedirectResponse(f"{PATH}/login", status_code=303)
    response.delete_cookie(COOKIE, path=PATH)
    return response


ROUTES = [Route("/login", login_page, methods=["GET"]),
          Route("/login", login, methods=["POST"])]
SESSION_ROUTES = [Route("/logout", logout, methods=["POST"])]
