"""Open and click tracking and one-click unsubscribe: the URLs in campaign mail
(delivery/stages/tracking.py writes them; admin/tracking.py records what they see).

    GET  /t/o/TOKEN   the pixel: a 43-octet transparent GIF, never cached
    GET  /t/c/TOKEN   302 to the link's original URL
    POST /u/TOKEN     unsubscribe: RFC 8058 one-click (body List-Unsubscribe=One-Click)
                      or the confirmation page's button; 200, no redirect, no login
    GET  /u/TOKEN     the confirmation page (a GET never unsubscribes: link scanners and
                      prefetchers follow GETs, RFC 8058 §1)

A token that is not ours, changed in any octet or of another kind is 404 on every
route: a click token's URL is only ever one we signed, so there is no open redirect.
Plain Starlette routes, no API key: recipients' mail programs reach them. The event is
recorded after the answer is sent (a background task), so a pixel costs the recipient
no store lookup.
"""

from __future__ import annotations

import email.parser
import email.policy
import html
from urllib.parse import parse_qs, quote

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..admin import Admin
from ..delivery.campaigns import tokens

# The smallest transparent 1x1 GIF89a: header, logical screen, a two-colour table,
# a graphic control extension marking colour 0 transparent, one image, trailer.
PIXEL = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff"
         b"!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00"
         b"\x02\x02D\x01\x00;")
assert len(PIXEL) == 43
NO_CACHE = {"Cache-Control": "no-store, no-cache, must-revalidate, max-age=0",
            "Pragma": "no-cache", "Expires": "0"}
MAX_FORM = 4096          # an unsubscribe POST body is one short field
# A Location holds the URL as it was; only what a header cannot carry (spaces, non-ASCII;
# control characters are never in a token's URL) is percent-encoded in UTF-8, as a
# browser following the original link would send it.
_URL_SAFE = "".join(map(chr, range(0x21, 0x7F)))

def _not_found() -> Response:
    return PlainTextResponse("Not found\n", status_code=404)


def routes(admin: Admin) -> list[Route]:
    tracking = admin.tracking

    async def pixel(request: Request) -> Response:
        token = tracking.token(request.path_params["token"], tokens.OPEN)
        if token is None:
            return _not_found()
        return Response(PIXEL, media_type="image/gif", headers=NO_CACHE,
                        background=BackgroundTask(tracking.opened, token, _ua(request),
                                                  request.method))

    async def click(request: Request) -> Response:
        token = tracking.token(request.path_params["token"], tokens.CLICK)
        if token is None:
            return _not_found()
        return Response(status_code=302, headers={
            "Location": quote(token.url, safe=_URL_SAFE), "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer"},
            background=BackgroundTask(tracking.clicked, token, _ua(request),
                                      request.method))

    async def unsubscribe(request: Request) -> Response:
        token = tracking.token(request.path_params["token"], tokens.UNSUBSCRIBE)
        if token is None:
            return _not_found()
        if request.method != "POST":
            return HTMLResponse(_page(token, done=False), headers=NO_CACHE)
        method = await _method(request)
        if method is None:
            return PlainTextResponse(
                "Expected the form field List-Unsubscribe=One-Click (RFC 8058 §3.2)\n",
                status_code=400)
        await tracking.unsubscribe(token, method)
        if method == "one-click":
            return PlainTextResponse("Unsubscribed\n", headers=NO_CACHE)
        return HTMLResponse(_page(token, done=True), headers=NO_CACHE)

    return [Route("/t/o/{token}", pixel, methods=["GET", "HEAD"]),
            Route("/t/c/{token}", click, methods=["GET", "HEAD"]),
            Route("/u/{token}", unsubscribe, methods=["GET", "POST"])]


def _ua(request: Request) -> str:
    return request.headers.get("user-agent", "")


async def _method(request: Request) -> str | None:
    """one-click for RFC 8058's List-Unsubscribe=One-Click (urlencoded or multipart
    form data, §3.1), page for the confirmation page's button, None otherwise."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            return None
    ctype = request.headers.get("content-type", "")
    if ctype.lower().startswith("multipart/form-data"):
        fields = _multipart(ctype, body)
    else:
        fields = {k: v[0] for k, v in parse_qs(body.decode("latin-1")).items()}
    if fields.get("List-Unsubscribe") == "One-Click":
        return "one-click"
    if fields.get("confirm") == "page":
        return "page"
    return None


def _multipart(ctype: str, body: bytes) -> dict[str, str]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {ctype}\r\n\r\n".encode("latin-1") + body)
    fields = {}
    if message.is_multipart():
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if isinstance(name, str):
                fields[name] = part.get_payload(decode=True).decode("utf-8", "replace").strip()
    return fields


def _page(token: tokens.Token, done: bool) -> str:
    who, domain = html.escape(token.rcpt), html.escape(token.domain)
    if done:
        body = f"<p><strong>{who}</strong> will no longer get this mail from {domain}.</p>"
    else:
        body = (f"<p>Stop mail from {domain} to <strong>{who}</strong>?</p>"
                '<form method="post"><input type="hidden" name="confirm" value="page">'
                '<button type="submit">Unsubscribe</button></form>')
    return ('<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            '<meta name="robots" content="noindex">'
            f"<title>Unsubscribe</title></head><body>{body}</body></html>")
