"""The event log: a search by address, message id, type and time, a page at a time
(newest first; "older" follows the page's cursor); and one message's whole story,
oldest first: received, checks, queued, delivered / deferred / bounced, opened or
clicked later, whatever the log holds under its id."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...admin.events import KNOWN_TYPES, MAX_LIMIT
from ..auth import admin_of, page
from ..render import render

FILTERS = ("address", "message_id", "type", "since", "until")
PAGE = 50


@page
async def index(request: Request) -> Response:
    q = request.query_params
    chosen = {k: q.get(k, "").strip() for k in FILTERS}
    result = await admin_of(request).events.search(
        address=chosen["address"] or None, message_id=chosen["message_id"] or None,
        types=chosen["type"] or None, since=chosen["since"] or None,
        until=chosen["until"] or None, limit=PAGE, cursor=q.get("cursor") or None)
    given = {k: v for k, v in chosen.items() if v}
    older = "/admin/logs?" + urlencode({**given, "cursor": result.next}) if result.next \
        else None
    newest = "/admin/logs?" + urlencode(given) if q.get("cursor") else None
    return render(request, "logs.html", page=result, chosen=chosen, types=KNOWN_TYPES,
                  older=older, newest=newest)


@page
async def story(request: Request) -> Response:
    message_id = request.path_params["id"]
    found = await admin_of(request).events.search(message_id=message_id, limit=MAX_LIMIT)
    return render(request, "story.html", message_id=message_id,
                  events=list(reversed(found.events)), more=found.next is not None)


ROUTES = [Route("/logs", index, methods=["GET"]),
          Route("/logs/message/{id}", story, methods=["GET"])]
