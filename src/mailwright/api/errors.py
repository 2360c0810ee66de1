"""Every error of the API as one JSON shape, `{"error": {"code", "message"}}`, with the
status that says what went wrong (RFC 9110 §15.5): 401 no or a bad key, 403 a key
without the scope, 404 nothing there, 409 a clash with what exists, 413 too large, 422
input that can never succeed as given, 429 over the key's rate limit. Never a 500 for
bad input: a 500 is a bug, logged with its traceback, and says only that."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Awaitable, Callable
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..admin import AdminError, Conflict, Invalid, NotFound
from ..admin.errors import Forbidden, TooLarge, Unavailable

log = logging.getLogger("mailwright.api")


class ErrorDetail(BaseModel):
    code: str          # machine-readable: unauthorized, forbidden, not_found, conflict...
    message: str       # for people: what is wrong and what to do


class ErrorBody(BaseModel):
    error: ErrorDetail


# The responses every operation may give besides its own: declared in the OpenAPI
# document (FastAPI then adds no validation-error schema of its own for 422).
COMMON_RESPONSES: dict[int | str, dict] = {
    status: {"model": ErrorBody, "description": HTTPStatus(status).phrase}
    for status in (401, 403, 404, 409, 413, 422, 429)}

CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
         409: "conflict", 413: "too_large", 422: "invalid", 429: "rate_limited",
         503: "unavailable"}
# The finer kinds first: Forbidden and TooLarge are kinds of Invalid.
ADMIN_STATUS = ((Forbidden, 403), (TooLarge, 413), (Invalid, 422), (NotFound, 404),
                (Conflict, 409), (Unavailable, 503))


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code or CODES.get(status, "error")
        self.message = message
        self.headers = headers


def error_response(status: int, code: str, message: str,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status,
                        headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    """Each problem as `where: what` (`body.to[0]: value is not a valid email address`)."""
    parts = []
    for e in exc.errors():
        if e.get("type") == "json_invalid":       # loc: ("body", offset)
            offset = e["loc"][-1]
            parts.append(f"body: not valid JSON at offset {offset}: "
                         f"{e.get('ctx', {}).get('error', 'malformed')}")
            continue
        where = ".".join(str(p) for p in e.get("loc", ()))
        parts.append(f"{where}: {e.get('msg', 'invalid')}" if where else e.get("msg", ""))
    return "; ".join(parts) or "invalid request"


def _operations(request: Request) -> dict[str, dict]:
    """The OpenAPI document's operations that the request's path reaches, by method:
    which methods the resource has, and which ask for a key. Of several path templates
    matching (/queue/stats, /queue/{id}), each method goes to the first, as routing
    does."""
    found: dict[str, dict] = {}
    for template, item in request.app.openapi()["paths"].items():
        if _pattern(template).fullmatch(request.url.path):
            found = {**item, **found}
    return found


@functools.cache
def _pattern(template: str) -> re.Pattern:
    """/domains/{domain} -> /domains/[^/]+ (a path parameter is one segment)."""
    return re.compile("".join("[^/]+" if part.startswith("{") else re.escape(part)
                              for part in re.split(r"(\{[^}/]+\})", template)))


def install(app: FastAPI, require_key: Callable[[Request], Awaitable[object]]) -> None:
    """The handlers that turn every error into the one shape; `require_key` raises the
    ApiError (401) for a request without a live key (auth.py, which builds on this
    module)."""
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(AdminError)
    async def admin_error(request: Request, exc: AdminError) -> JSONResponse:
        status = next((s for kind, s in ADMIN_STATUS if isinstance(exc, kind)), 422)
        return error_response(status, CODES[status], str(exc))

    async def unauthenticated(request: Request) -> JSONResponse | None:
        """The 401 for a request without a live key to an operation that asks for one;
        None otherwise. A body is parsed before the key is checked: what is wrong with
        it is not for anyone."""
        operation = _operations(request).get(request.method.lower(), {})
        if not operation.get("security"):
            return None
        try:
            await require_key(request)
        except ApiError as e:
            return await api_error(request, e)
        return None

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return await unauthenticated(request) or \
            error_response(422, "invalid", _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        if exc.status_code == 400:
            # FastAPI's answer to a body it cannot even decode (not UTF-8), where it
            # answers malformed JSON with a validation error: one status for both.
            return await unauthenticated(request) or error_response(
                422, "invalid", f"body: {message}: expected JSON text in UTF-8 "
                "(RFC 8259 §8.1)")
        headers = exc.headers
        if exc.status_code == 405:
            # RFC 9110 §10.2.1: every method of the resource. Starlette names only
            # those of the first route whose path matched, and each operation of a
            # path is a route of its own.
            allowed = ", ".join(sorted(method.upper() for method in _operations(request)))
            headers = {**(headers or {}), "Allow": allowed}
        return error_response(exc.status_code, CODES.get(exc.status_code, "error"), message,
                              headers)

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal_error",
                              "the server failed to handle this request; see its log")
