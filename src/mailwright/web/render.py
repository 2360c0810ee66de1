"""Pages from Jinja2 templates (web/templates, autoescaped), with what every page
shows: who is logged in, the CSRF token for its forms, the message of the last post."""

from __future__ import annotations

import json
import time
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from .auth import take_flash

NAV = (("/", "Dashboard"), ("/domains", "Domains"), ("/accounts", "Accounts"),
       ("/queue", "Queue"), ("/logs", "Logs"), ("/campaigns", "Campaigns"),
       ("/suppressions", "Suppressions"), ("/settings", "Settings"))


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) + " UTC" if ts else "—"


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _percent(rate: float | None) -> str:
    """A rate as people read it; "—" when there was nothing to divide by."""
    return "—" if rate is None else f"{rate * 100:.1f}%"


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


environment = jinja2.Environment(loader=jinja2.PackageLoader("mailwright.web", "templates"),
                                 autoescape=True, undefined=jinja2.StrictUndefined,
                                 trim_blocks=True, lstrip_blocks=True)
environment.filters.update(when=_when, size=_size, tojson_text=_json, percent=_percent)
templates = Jinja2Templates(env=environment)


def render(request: Request, template: str, status: int = 200, /,
           **context: Any) -> HTMLResponse:
    session = getattr(request.state, "session", None)
    return templates.TemplateResponse(request, template, status_code=status, context=dict(
        context, session=session, csrf=session.csrf if session else "",
        flash=take_flash(request), nav=NAV, path=request.url.path))
