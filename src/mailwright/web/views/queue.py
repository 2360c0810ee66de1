"""The outbound queue: messages with filters (state, sender, recipient domain), one
message's recipients and attempts, and what an admin does to it: retry now, hold,
release, delete."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...admin.queue import STATES, QueueFilter
from ..auth import admin_of, back, page
from ..render import render


@page
async def index(request: Request) -> Response:
    q = request.query_params
    where = QueueFilter(state=q.get("state") or None, sender=q.get("sender") or None,
                        recipient_domain=q.get("domain") or None)
    overview = await admin_of(request).queue.list(where)
    return render(request, "queue.html", overview=overview, where=where, states=STATES)


@page
async def show(request: Request) -> Response:
    entry = await admin_of(request).queue.show(request.path_params["id"])
    return render(request, "queue_entry.html", entry=entry)


@page
async def act(request: Request, form: dict[str, str]) -> Response:
    queue, message_id = admin_of(request).queue, request.path_params["id"]
    action = form.get("action")
    if action == "delete":
        if form.get("confirm") != "yes":
            return back(request, f"/queue/{message_id}",
                        "Nothing done: tick the confirmation to delete.")
        await queue.delete(message_id)
        return back(request, "/queue", f"Deleted {message_id} (no bounce sent).")
    if action not in ("retry", "hold", "release"):
        return back(request, f"/queue/{message_id}")
    done = await getattr(queue, action)(message_id)
    return back(request, f"/queue/{message_id}",
                f"{action.capitalize()}: {done.recipients} recipient(s) now {done.state}.")


ROUTES = [Route("/queue", index, methods=["GET"]),
          Route("/queue/{id}", show, methods=["GET"]),
          Route("/queue/{id}", act, methods=["POST"])]
