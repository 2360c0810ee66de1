"""/api/v1/webhooks: endpoints that are sent events (webhooks/), and each one's
delivery log. An endpoint of a domain is its domain-admins'; a global one (every
domain's events) is for admin keys only."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field

from ...admin.apikeys import ApiKey
from ...admin.webhooks import Webhook
from ...store.webhooks import WebhookDelivery
from ..auth import Manager, admin_of, managed_domain
from ..errors import ApiError
from ..jsonbody import JsonRoute

router = APIRouter(prefix="/webhooks", tags=["Webhooks"], route_class=JsonRoute)


class WebhookOut(BaseModel):
    id: int
    url: str
    domain: str | None = Field(description="null: the events of every domain")
    events: list[str] = Field(description='event types; ["*"]: all')
    created: float
    enabled: bool
    disabled: float | None
    failures: int = Field(description="consecutive failed attempts")
    retry_at: float | None

    @classmethod
    def of(cls, w: Webhook) -> WebhookOut:
        return cls(id=w.id, url=w.url, domain=w.domain, events=list(w.events),
                   created=w.created, enabled=w.enabled, disabled=w.disabled,
                   failures=w.failures, retry_at=w.retry_at)


class WebhookIn(BaseModel):
    url: str = Field(min_length=8, max_length=2048, description="http:// or https://")
    domain: str | None = Field(None, max_length=253,
                               description="only this domain's events; null: every domain "
                                           "(admin keys)")
    events: list[str] = Field(["*"], min_length=1, max_length=100)


class WebhookCreated(BaseModel):
    webhook: WebhookOut
    secret: str = Field(description="the HMAC-SHA256 key of the signatures: shown once")


class DeliveryOut(BaseModel):
    id: int = Field(description="the Mailwright-Delivery header: receivers dedupe by it")
    endpoint_id: int
    event_id: int
    event_type: str
    state: Literal["pending", "delivered", "failed"]
    queued: float
    attempts: int
    last_attempt: float | None
    last_status: int | None
    last_error: str | None
    done: float | None

    @classmethod
    def of(cls, d: WebhookDelivery) -> DeliveryOut:
        return cls(id=d.id, endpoint_id=d.endpoint_id, event_id=d.event_id,
                   event_type=d.event_type, state=d.state, queued=d.queued,
                   attempts=d.attempts, last_attempt=d.last_attempt,
                   last_status=d.last_status, last_error=d.last_error, done=d.done)


Id = Annotated[int, Path(ge=1, le=2**62)]


def _may_use(key: ApiKey, w: Webhook) -> bool:
    return key.is_admin if w.domain is None else key.may_manage(w.domain)


async def _webhook(request: Request, key: ApiKey, webhook_id: int) -> Webhook:
    """The endpoint, 404 for one the key may not see (as for one that is not there)."""
    w = await admin_of(request).webhooks.show(webhook_id)
    if not _may_use(key, w):
        raise ApiError(404, f"no webhook {webhook_id}")
    return w


@router.get("", summary="List webhook endpoints")
async def list_webhooks(request: Request, key: Manager,
                        domain: Annotated[str | None, Query(max_length=253)] = None
                        ) -> list[WebhookOut]:
    name = managed_domain(key, domain) if domain is not None else None
    found = await admin_of(request).webhooks.list(name)
    return [WebhookOut.of(w) for w in found if _may_use(key, w)]


@router.post("", status_code=201, summary="Register a webhook endpoint")
async def add_webhook(body: WebhookIn, request: Request, key: Manager) -> WebhookCreated:
    if body.domain is None:
        if not key.is_admin:
            raise ApiError(403, "an endpoint for every domain needs an admin key; "
                                "give the domain")
        domain = None
    else:
        domain = managed_domain(key, body.domain)
    made = await admin_of(request).webhooks.add(body.url, domain, body.events)
    return WebhookCreated(webhook=WebhookOut.of(made.webhook), secret=made.secret)


@router.get("/{webhook_id}", summary="One webhook endpoint")
async def show(webhook_id: Id, request: Request, key: Manager) -> WebhookOut:
    return WebhookOut.of(await _webhook(request, key, webhook_id))


@router.delete("/{webhook_id}", summary="Remove a webhook endpoint and its delivery log")
async def remove(webhook_id: Id, request: Request, key: Manager) -> WebhookOut:
    await _webhook(request, key, webhook_id)
    return WebhookOut.of(await admin_of(request).webhooks.remove(webhook_id))


@router.post("/{webhook_id}/enable", summary="Enable it: what it still has pending goes")
async def enable(webhook_id: Id, request: Request, key: Manager) -> WebhookOut:
    await _webhook(request, key, webhook_id)
    return WebhookOut.of(await admin_of(request).webhooks.enable(webhook_id))


@router.post("/{webhook_id}/disable", summary="Disable it: no new deliveries")
async def disable(webhook_id: Id, request: Request, key: Manager) -> WebhookOut:
    await _webhook(request, key, webhook_id)
    return WebhookOut.of(await admin_of(request).webhooks.disable(webhook_id))


@router.get("/{webhook_id}/deliveries", summary="The endpoint's delivery log, newest first")
async def deliveries(webhook_id: Id, request: Request, key: Manager,
                     state: Literal["pending", "delivered", "failed"] | None = None,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 50,
                     before: Annotated[int | None, Query(ge=1, le=2**62,
                                       description="the last id of the previous page")] = None
                     ) -> list[DeliveryOut]:
    await _webhook(request, key, webhook_id)
    found = await admin_of(request).webhooks.deliveries(webhook_id, limit, before, state)
    return [DeliveryOut.of(d) for d in found]


@router.post("/deliveries/{delivery_id}/redeliver",
             summary="Send a delivered or failed delivery again (same delivery id)")
async def redeliver(delivery_id: Id, request: Request, key: Manager) -> DeliveryOut:
    admin = admin_of(request)
    d = await admin.webhooks.delivery(delivery_id)
    await _webhook(request, key, d.endpoint_id)
    return DeliveryOut.of(await admin.webhooks.redeliver(delivery_id))
