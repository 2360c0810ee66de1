"""Who is at the browser: the session cookie, the CSRF check of every form, and the
redirect to the login page. Sessions themselves are admin/admins.py's.

The cookie (`mw_admin`) holds a random token, HttpOnly (no script reads it),
SameSite=Strict (no other site's page sends it, RFC 6265bis §5.4.7), Path=/admin (the
API and public endpoints never see it), Secure when the page came over https. Every
form carries the session's CSRF token (the synchronizer token pattern); a post
without the right one is refused with 403 before anything is done. The login form,
which has no session yet, carries a token that must match a short-lived cookie of its
own (double submit), so no other site can log a browser in as someone else.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import wraps
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..admin import Admin, AdminError
from ..admin.admins import WebSession

COOKIE = "mw_admin"
LOGIN_COOKIE = "mw_login"
PATH = "/admin"
LOGIN_TTL = 3600           # seconds a login form stays usable


class CsrfRefused(Exception):
    """A form post without the token of its session: answered 403."""


@dataclass
class Flash:
    """One message for the next page a session sees (after a redirect: Post/Redirect/
    Get). Kept in memory: one process serves HTTP (workers.py)."""
    kind: str              # ok | error
    text: str


def admin_of(request: Request) -> Admin:
    return request.app.state.admin


def set_cookie(request: Request, response: Response, name: str, value: str,
               max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, path=PATH, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")


def login_url(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"{PATH}/login?next={quote(target, safe='')}"


def safe_next(value: str | None) -> str:
    """Where to go after login: a path of the admin only (never another site: an open
    redirect would lend our name to a phishing link)."""
    if value and value.startswith(PATH + "/") and not value.startswith("//") \
            and "\\" not in value and "\n" not in value and "\r" not in value:
        return value
    return PATH + "/"


def new_login_token() -> str:
    return secrets.token_urlsafe(32)


def login_token_ok(request: Request, submitted: str | None) -> bool:
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    return bool(cookie) and bool(submitted) and hmac.compare_digest(cookie, submitted)


async def check_csrf(request: Request, session: WebSession) -> dict[str, str]:
    """The posted form's fields, once its CSRF token is the session's (CsrfRefused
    otherwise)."""
    form = await request.form()
    token = form.get("csrf")
    if not isinstance(token, str) or not hmac.compare_digest(token, session.csrf):
        raise CsrfRefused()
    return {k: v for k, v in form.items() if isinstance(v, str)}


Handler = Callable[..., Awaitable[Response]]


def page(handler: Handler) -> Handler:
    """A page of the admin: a request without a live session is sent to the login page
    (303, with ?next= to come back); a POST's form is checked for the CSRF token and
    handed to the handler as `form`."""
    @wraps(handler)
    async def endpoint(request: Request) -> Response:
        session = await admin_of(request).admins.session(request.cookies.get(COOKIE, ""))
        if session is None:
            return RedirectResponse(login_url(request), status_code=303)
        request.state.session = session
        if request.method != "POST":
            return await handler(request)
        form = await check_csrf(request, session)
        try:
            return await handler(request, form)
        except AdminError as e:
            # Shown on the page the form came from (each form names it: `return`).
            flash(request, "error", str(e))
            return RedirectResponse(safe_next(form.get("return")), status_code=303)
    return endpoint


MAX_FLASHES = 10_000      # sessions that never came back for theirs: the oldest go


def flash(request: Request, kind: str, text: str) -> None:
    flashes = request.app.state.flashes
    if len(flashes) >= MAX_FLASHES:
        del flashes[next(iter(flashes))]
    flashes[request.state.session.token] = Flash(kind, text)


def take_flash(request: Request) -> Flash | None:
    session = getattr(request.state, "session", None)
    return request.app.state.flashes.pop(session.token, None) if session else None


def back(request: Request, path: str, ok: str | None = None) -> RedirectResponse:
    """After a post: to `path` (303: the browser GETs it), with a message."""
    if ok:
        flash(request, "ok", ok)
    return RedirectResponse(PATH + path, status_code=303)
