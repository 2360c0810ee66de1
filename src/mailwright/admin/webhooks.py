"""Webhook endpoints: add (the signing secret shown once), list, show, remove, enable,
disable; each endpoint's delivery log, and sending one delivery again. Sending is
webhooks/dispatcher.py's, in the running server: what is made pending here goes out
within a second or so. A test send is the exception: one request made now, by the
caller, so that its answer can be shown at once."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..events.types import Event
from ..store.events import StoredEvent
from ..store.webhooks import (
    ALL_EVENTS,
    PENDING,
    STATES,
    PendingWebhook,
    WebhookDelivery,
    WebhookEndpoint,
)
from ..webhooks.dispatcher import http_client, post
from . import validate
from .context import Context
from .errors import Conflict, Invalid, NotFound

MAX_URL = 2048
MAX_DELIVERIES = 1000          # per page of the delivery log


@dataclass(frozen=True)
class Webhook:
    id: int
    url: str
    domain: str | None           # canonical; None: the events of every domain
    events: tuple[str, ...]      # event types, sorted; ("*",) for all
    created: float
    enabled: bool
    disabled: float | None       # when it was disabled (after failures, or by an admin)
    failures: int                # consecutive failed attempts
    retry_at: float | None       # after a failure, no attempt before then; None: none
                                 # failed since the last success

    @classmethod
    def of(cls, e: WebhookEndpoint) -> Webhook:
        return cls(e.id, e.url, e.domain, e.events, e.created, e.disabled is None,
                   e.disabled, e.failures, e.retry_at or None)


@dataclass(frozen=True)
class CreatedWebhook:
    webhook: Webhook
    secret: str                  # shown once: the key of the HMAC-SHA256 signatures


def _url(text: str) -> str:
    url = text.strip()
    try:
        parts = urlsplit(url)
        port = parts.port                            # raises on a bad one
    except ValueError as e:
        raise Invalid(f"invalid webhook URL {text!r}: {e}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or port == 0:
        raise Invalid(f"a webhook URL is http:// or https:// with a host, not {text!r}")
    if len(url) > MAX_URL or not url.isprintable() or any(c.isspace() for c in url):
        raise Invalid(f"invalid webhook URL {text!r}: at most {MAX_URL} characters, "
                      "no spaces or control characters")
    if parts.username is not None or parts.password is not None:
        raise Invalid("put no credentials in a webhook URL (it is shown in lists): "
                      "receivers check the signature instead")
    if parts.fragment:
        raise Invalid(f"a webhook URL has no #fragment: {text!r}")
    return url


def _events(types: Iterable[str]) -> tuple[str, ...]:
    chosen = {t.strip() for t in types}
    if not chosen or chosen == {ALL_EVENTS}:
        return (ALL_EVENTS,)
    if ALL_EVENTS in chosen:
        raise Invalid(f"{ALL_EVENTS!r} already means every event: give it alone")
    known = {e.value for e in Event}
    if unknown := sorted(chosen - known):
        raise Invalid(f"unknown event type(s) {', '.join(unknown)}: see docs/EVENTS.md "
                      f"(e.g. accepted, delivered, bounced), or {ALL_EVENTS!r} for all")
    return tuple(sorted(chosen))


TEST_TYPE = "test"             # the type of a test send (no event of the log has it)


@dataclass(frozen=True)
class TestSend:
    webhook: Webhook
    status: int | None           # the HTTP status answered; None: no answer
    error: str | None            # why it failed; None: a 2xx answer in time

    @property
    def ok(self) -> bool:
        return self.error is None


class Webhooks:
    def __init__(self, ctx: Context):
        self.store = ctx.store
        self.clock = ctx.clock
        self.settings = ctx.config.webhooks

    async def add(self, url: str, domain: str | None = None,
                  events: Iterable[str] = (ALL_EVENTS,)) -> CreatedWebhook:
        """An endpoint for the events of `domain` (a local domain), or of every domain
        (None), of the given types (("*",) or empty: all). It receives the events
        recorded from now on."""
        url, types = _url(url), _events(events)
        if domain is not None:
            domain = await validate.existing_domain(
                self.store, domain, hint=f"add it with: mailwright domain add {domain}")
        secret = "whsec_" + secrets.token_urlsafe(32)
        endpoint = await self.store.add_webhook(url, domain, types, secret, self.clock())
        return CreatedWebhook(Webhook.of(endpoint), secret)

    async def list(self, domain: str | None = None) -> list[Webhook]:
        """Every endpoint, oldest first; with `domain`, only that domain's own (not the
        global ones)."""
        name = validate.domain(domain) if domain is not None else None
        return [Webhook.of(e) for e in await self.store.webhooks(name)]

    async def show(self, webhook_id: int) -> Webhook:
        return Webhook.of(await self._endpoint(webhook_id))

    async def remove(self, webhook_id: int) -> Webhook:
        """Remove the endpoint, its pending deliveries and its delivery log."""
        endpoint = await self._endpoint(webhook_id)
        await self.store.remove_webhook(webhook_id)
        return Webhook.of(endpoint)

    async def enable(self, webhook_id: int) -> Webhook:
        """Enable it (again): its failure count and pause end, its pending deliveries
        go out (those queued longer than max_age are given up)."""
        return Webhook.of(await self._set_disabled(webhook_id, None))

    async def disable(self, webhook_id: int) -> Webhook:
        """No deliveries and no new ones in its outbox until enabled."""
        return Webhook.of(await self._set_disabled(webhook_id, self.clock()))

    async def test(self, webhook_id: int) -> TestSend:
        """POST a test event to the endpoint now, signed with its secret as every
        delivery is (README: Webhooks): type "test", event and delivery id 0. It is not
        in the outbox nor the delivery log, and does not count as a failure of the
        endpoint; it is sent even to a disabled one (to see whether it works again)."""
        endpoint = await self._endpoint(webhook_id)
        now = self.clock()
        item = PendingWebhook(
            WebhookDelivery(0, endpoint.id, 0, TEST_TYPE, PENDING, now, 0, None, None, None,
                            None),
            StoredEvent(0, now, TEST_TYPE, None, None, None, endpoint.domain, None,
                        {"webhook": endpoint.id, "url": endpoint.url}))
        async with http_client(self.settings) as client:
            status, error = await post(client, self.settings.timeout, endpoint, item,
                                       int(now))
        return TestSend(Webhook.of(endpoint), status, error)

    async def deliveries(self, webhook_id: int, limit: int = 50, before: int | None = None,
                         state: str | None = None) -> list[WebhookDelivery]:
        """The endpoint's delivery log, newest first: up to `limit` deliveries with ids
        below `before` (the last id of the previous page), of one state if given
        (pending, delivered, failed)."""
        if not 1 <= limit <= MAX_DELIVERIES:
            raise Invalid(f"limit is 1 to {MAX_DELIVERIES}, not {limit}")
        if state is not None and state not in STATES:
            raise Invalid(f"unknown delivery state {state!r}: use one of {', '.join(STATES)}")
        await self._endpoint(webhook_id)
        return await self.store.webhook_deliveries(webhook_id, limit, before, state)

    async def delivery(self, delivery_id: int) -> WebhookDelivery:
        found = await self.store.webhook_delivery(delivery_id)
        if found is None:
            raise NotFound(f"no webhook delivery {delivery_id}")
        return found

    async def redeliver(self, delivery_id: int) -> WebhookDelivery:
        """Send a delivered or failed delivery again (same delivery id, so a receiver
        that deduplicates ignores it unless it forgot it): first in its endpoint's
        line, within max_age from now."""
        if (await self.delivery(delivery_id)).state == PENDING:
            raise Conflict(f"delivery {delivery_id} is still pending: it is sent as soon "
                           "as its endpoint is enabled and not paused")
        again = await self.store.redeliver_webhook(delivery_id, self.clock())
        if again is None:
            raise NotFound(f"no webhook delivery {delivery_id}")
        return again

    async def _endpoint(self, webhook_id: int) -> WebhookEndpoint:
        endpoint = await self.store.webhook(webhook_id)
        if endpoint is None:
            raise NotFound(f"no webhook {webhook_id} (see: mailwright webhook list)")
        return endpoint

    async def _set_disabled(self, webhook_id: int, when: float | None) -> WebhookEndpoint:
        endpoint = await self.store.set_webhook_disabled(webhook_id, when)
        if endpoint is None:
            raise NotFound(f"no webhook {webhook_id} (see: mailwright webhook list)")
        return endpoint
