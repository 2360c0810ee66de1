"""A cap on request bodies (ASGI middleware), before anything reads them: the largest
useful body is a send request carrying a message of [limits] max_message_size in
base64 (4/3 of it) plus its JSON, so anything larger is refused with 413 instead of
being read into memory. A declared Content-Length is checked up front; a chunked body
is counted as it arrives."""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException

SLACK = 1 << 20            # the JSON around the base64 text


def body_limit(max_message_size: int) -> int:
    return max_message_size * 4 // 3 + SLACK


def _message(limit: int) -> str:
    return f"request body over {limit} octets"


class BodyTooLarge(HTTPException):
    """Raised from `receive` once a body without a Content-Length passes the cap. An
    HTTPException because FastAPI re-raises those from its body read ("If a middleware
    raises an HTTPException, it should be raised again") and turns anything else into
    400 "There was an error parsing the body": the app's handler then answers 413 in
    the one error shape (errors.py). The connection is closed: the rest of the body
    is never read."""

    def __init__(self, limit: int):
        super().__init__(413, _message(limit), headers={"Connection": "close"})


class LimitBody:
    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(send)
        seen = 0
        started = False

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        async def tracking(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)
        try:
            await self.app(scope, counted, tracking)
        except BodyTooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send) -> None:
        body = json.dumps({"error": {"code": "too_large",
                                     "message": _message(self.limit)}}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
