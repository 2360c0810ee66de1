"""A cap on request bodies (ASGI middleware), before anything reads them: the largest
useful body is a send request carrying a message of [limits] max_message_size in
base64 (4/3 of it) plus its JSON, so anything larger is refused with 413 instead of
being read into memory. A declared Content-Length is checked up front; a chunked body
is counted as it arrives."""

from __future__ import annotations

import json

SLACK = 1 << 20            # the JSON around the base64 text


def body_limit(max_message_size: int) -> int:
    return max_message_size * 4 // 3 + SLACK


class BodyTooLarge(Exception):
    pass


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
                    raise BodyTooLarge
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
        body = json.dumps({"error": {"code": "too_large", "message":
                                     f"request body over {self.limit} octets"}}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
