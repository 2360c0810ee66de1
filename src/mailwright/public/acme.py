"""HTTP-01 (RFC 8555 §8.3): the CA fetches
http://<name>/.well-known/acme-challenge/<token> on port 80 and expects the key
authorization the issuing process published (certificates/challenges.py)."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ..certificates import challenges
from ..certificates.files import AcmeFiles

PATH = "/.well-known/acme-challenge/{token}"


def route(data_dir: Path) -> Route:
    directory = AcmeFiles.of(data_dir).challenges

    async def answer(request: Request) -> Response:
        body = challenges.lookup(directory, request.path_params["token"])
        if body is None:
            return PlainTextResponse("no such ACME challenge\n", status_code=404)
        # §8.3: the body is the key authorization; the CA ignores the media type.
        return Response(body, media_type="application/octet-stream")

    return Route(PATH, answer, methods=["GET"])
