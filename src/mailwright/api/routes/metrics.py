"""/metrics: the Prometheus exposition (metrics/), outside /api/v1 where scrapers look
for it. [http] metrics_auth = "loopback" lets scrapers on the same host in without a
key and asks anyone else for an admin key; "key" always asks for one."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from fastapi.security import HTTPAuthorizationCredentials

from ...metrics import render
from ..auth import admin_key, bearer, caller
from ..errors import ApiError

router = APIRouter(tags=["Metrics"])


def _loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@router.get("/metrics", summary="Prometheus metrics",
            response_class=Response,
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "the Prometheus text format 0.0.4, or "
                                            "OpenMetrics when the Accept header asks"}})
async def metrics(request: Request,
                  accept: Annotated[str | None, Header()] = None) -> Response:
    metrics = request.app.state.metrics
    if metrics is None:
        raise ApiError(404, "metrics are not kept by this server")
    if request.app.state.metrics_auth != "loopback" or not _loopback(request):
        credentials: HTTPAuthorizationCredentials | None = await bearer(request)
        await admin_key(await caller(request, credentials))
    body, content_type = await render(metrics, accept)
    return Response(body, media_type=content_type)
