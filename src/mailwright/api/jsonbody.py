"""JSON request bodies as I-JSON (RFC 7493 §2.1) wants them: no string may hold an
unpaired UTF-16 surrogate escape ("\\ud800").

FastAPI decodes bodies with the standard library's json module, which turns such an
escape into a Python str that no UTF-8 encoder can write (RFC 8259 §8.2 leaves what a
receiver does with it open): pydantic passes it on wherever a field has no length
constraint, and the first `.encode()`, SQLite binding or email generator downstream
raised, a 500. Refused here as malformed JSON instead (422, naming the field), for
every route with a body: their routers use `JsonRoute` (FastAPI's documented way to
give routes their own Request class).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

# Where to point in the text for the error's offset (the first such escape; the walk
# below decides whether one is unpaired).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def unpaired_surrogate(value: Any) -> str | None:
    """Where the first string holding an unpaired surrogate is (`body.to[0]`), or None.
    Iterative: a body nested as deep as json allows must not exhaust the stack here."""
    stack: list[tuple[str, Any]] = [("body", value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            # isascii() is a flag test: the long base64 strings cost nothing.
            if not item.isascii() and not _encodable(item):
                return where
        elif isinstance(item, list):
            stack.extend((f"{where}[{i}]", v) for i, v in reversed(list(enumerate(item))))
        elif isinstance(item, dict):
            for key, v in reversed(list(item.items())):
                stack.append((f"{where}.{key}", v))
                stack.append((f"a key of {where}", key))
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class JsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            value = json.loads(body)
            if where := unpaired_surrogate(value):
                text = body.decode("utf-8", "replace")
                found = _SURROGATE_ESCAPE.search(text)
                # FastAPI answers a JSONDecodeError as its other JSON errors: 422.
                raise json.JSONDecodeError(
                    f"{where} holds an unpaired UTF-16 surrogate escape: not a character "
                    "(RFC 7493 §2.1)", text, found.start() if found else 0)
            self._json = value
        return self._json


class JsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(JsonRequest(request.scope, request.receive))
        return strict
