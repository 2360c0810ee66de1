"""The dispatcher: sends the outbox's pending deliveries to their endpoints.

Each endpoint is a lane of its own: its deliveries go out one at a time, in the order
of their events. A 2xx answer within `timeout` is success; anything else (another
status, no connection, no answer in time) pauses the endpoint for the backoff
(first_retry, doubling, at most max_retry) and then the same delivery is tried first
again, so a receiver that was down gets everything afterwards, in order. A delivery
queued longer than max_age is given up (failed, in the delivery log) unsent; after
disable_after consecutive failures the endpoint is disabled (event webhook-disabled)
and keeps its outbox until an admin enables it again.

Delivery is at least once: an outcome is committed after the answer, so a crash (or a
receiver that answers after our timeout) between the receiver's processing and our
commit sends that delivery again, with the same Mailwright-Delivery id. At most one
delivery per lane is answered and not yet committed at any time.

The outbox is looked at every `poll` seconds (one indexed query when idle), sooner
when a lane finishes or a paused endpoint's pause ends.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable

import httpx

from ..config import WebhookSettings
from ..events.log import EventLog
from ..events.types import Event
from ..store.webhooks import (
    DELIVERED,
    FAILED,
    PENDING,
    PendingWebhook,
    WebhookEndpoint,
    WebhookOutcome,
    WebhookStore,
)
from . import payload

log = logging.getLogger("mailwright.webhooks")

POLL = 1.0              # seconds between looks at the outbox when nothing wakes us
BATCH = 100             # pending deliveries read per endpoint at a time
ANSWER_KEPT = 200       # octets of a refusing answer's body kept in the delivery log
ANSWER_READ = 64 * 1024  # octets of an answer read at most (the rest is not waited for)
ANSWER_WAIT = 2.0       # seconds an answer's body is waited for once its status is known


def retry_delay(settings: WebhookSettings, failures: int) -> float:
    """The pause after the `failures`-th consecutive failure: first_retry, doubling,
    capped at max_retry."""
    return min(settings.first_retry * 2 ** (failures - 1), settings.max_retry)


def http_client(settings: WebhookSettings) -> httpx.AsyncClient:
    # The system's CA store, as for outbound SMTP (mx/connection.py); no proxies or
    # .netrc from the environment: where deliveries go is the endpoint's URL alone.
    return httpx.AsyncClient(
        timeout=settings.timeout, follow_redirects=False, trust_env=False,
        verify=ssl.create_default_context(),
        limits=httpx.Limits(max_connections=settings.concurrency,
                            max_keepalive_connections=settings.concurrency))


class Dispatcher:
    def __init__(self, settings: WebhookSettings, store: WebhookStore, events: EventLog,
                 clock: Callable[[], float] = time.time, poll: float = POLL):
        self.settings = settings
        self.store = store
        self.events = events
        self.clock = clock
        self.poll = poll
        self.client = http_client(settings)
        self._lanes: dict[int, asyncio.Task] = {}     # endpoint id -> its lane
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        try:
            while True:
                try:
                    pause = await self.run_once()
                except Exception:  # logged; the next look tries again
                    log.exception("webhook dispatch failed")
                    pause = self.poll
                try:
                    await asyncio.wait_for(self._wake.wait(), pause)
                except TimeoutError:
                    pass
                self._wake.clear()
        finally:
            await self.close()

    async def run_once(self) -> float:
        """Start a lane for each endpoint that has pending deliveries and is not paused
        (at most `concurrency` lanes at once); returns how long to wait before the next
        look."""
        now = self.clock()
        due, paused_until = await self.store.webhooks_due(now)
        for endpoint in due:
            if len(self._lanes) >= self.settings.concurrency:
                break
            if endpoint.id not in self._lanes:
                lane = asyncio.create_task(self._lane(endpoint))
                self._lanes[endpoint.id] = lane
                lane.add_done_callback(lambda task, key=endpoint.id: self._ended(key, task))
        if paused_until is None:
            return self.poll
        return min(self.poll, max(0.0, paused_until - now))

    async def settle(self) -> None:
        """Wait for the lanes running now to end (tests, shutdown)."""
        while self._lanes:
            await asyncio.gather(*self._lanes.values(), return_exceptions=True)

    async def close(self) -> None:
        for lane in self._lanes.values():
            lane.cancel()
        await self.settle()
        await self.client.aclose()

    def _ended(self, endpoint_id: int, task: asyncio.Task) -> None:
        self._lanes.pop(endpoint_id, None)
        if task.cancelled():
            return
        if (error := task.exception()) is not None:
            # Not woken: the next regular look retries, rather than a tight loop.
            log.error("webhook lane of endpoint %d failed", endpoint_id, exc_info=error)
            return
        self.wake()            # more may have become due meanwhile, or a lane is free

    async def _lane(self, endpoint: WebhookEndpoint) -> None:
        """Send the endpoint's pending deliveries in order until none is left or one
        fails. Each outcome is committed while the next request goes out."""
        failures = endpoint.failures
        commit: asyncio.Future | None = None
        try:
            while batch := await self.store.webhook_pending(endpoint.id, BATCH):
                for item in batch:
                    outcome = await self._attempt(endpoint, item, failures)
                    if commit is not None:
                        await commit
                    commit = asyncio.ensure_future(self.store.webhook_outcome(outcome))
                    if not outcome.attempted:
                        continue
                    failures = outcome.failures
                    if outcome.state == PENDING:
                        await commit
                        commit = None
                        if outcome.disable:
                            self._disabled(endpoint, failures)
                        return
                # Read the next batch only once this one's outcomes are in the store.
                await commit
                commit = None
        finally:
            if commit is not None:
                await commit

    async def _attempt(self, endpoint: WebhookEndpoint, item: PendingWebhook,
                       failures: int) -> WebhookOutcome:
        d, s = item.delivery, self.settings
        now = self.clock()
        if now - d.queued > s.max_age:
            return WebhookOutcome(d.id, endpoint.id, FAILED, now, attempted=False,
                                  error=f"given up: not delivered within max_age "
                                        f"({s.max_age:g} s)")
        status, error = await self._post(endpoint, item, int(now))
        now = self.clock()
        if error is None:
            return WebhookOutcome(d.id, endpoint.id, DELIVERED, now, status=status)
        failures += 1
        return WebhookOutcome(d.id, endpoint.id, PENDING, now, status=status, error=error,
                              failures=failures, retry_at=now + retry_delay(s, failures),
                              disable=failures >= s.disable_after)

    async def _post(self, endpoint: WebhookEndpoint, item: PendingWebhook,
                    timestamp: int) -> tuple[int | None, str | None]:
        return await post(self.client, self.settings.timeout, endpoint, item, timestamp)

    def _disabled(self, endpoint: WebhookEndpoint, failures: int) -> None:
        log.warning("webhook endpoint %d (%s) disabled after %d consecutive failures",
                    endpoint.id, endpoint.url, failures)
        # domain: the endpoint's ("" for a global one), so that the event is that
        # domain's too (per-domain retention, the endpoints of that domain).
        self.events.emit(Event.WEBHOOK_DISABLED, webhook=endpoint.id, url=endpoint.url,
                         failures=failures, domain=endpoint.domain or "")


async def post(client: httpx.AsyncClient, timeout: float, endpoint: WebhookEndpoint,
               item: PendingWebhook, timestamp: int) -> tuple[int | None, str | None]:
    """One signed request: (status, None) on success; (status or None, why) on failure.
    The verdict is the status line within `timeout`; the answer's body is read
    afterwards, briefly, for the log and so that the connection can be used again."""
    content = payload.body(item)
    request = client.build_request(
        "POST", endpoint.url, content=content,
        headers=payload.headers(endpoint.secret, item, content, timestamp))
    try:
        # httpx's timeout is per read or write; this one bounds the whole attempt.
        async with asyncio.timeout(timeout):
            response = await client.send(request, stream=True)
    except TimeoutError:
        return None, f"no answer within {timeout:g} s"
    except (httpx.HTTPError, httpx.InvalidURL) as e:
        return None, f"{type(e).__name__}: {e}"
    try:
        async with asyncio.timeout(ANSWER_WAIT):
            answer = await _start_of(response)
    except (TimeoutError, httpx.HTTPError):
        answer = b""
    finally:
        await response.aclose()
    if response.is_success:
        return response.status_code, None
    text = answer[:ANSWER_KEPT].decode("utf-8", "replace").strip()
    return response.status_code, f"HTTP {response.status_code}" + (f": {text}" if text
                                                                  else "")


async def _start_of(response: httpx.Response) -> bytes:
    chunks, size = [], 0
    async for chunk in response.aiter_raw():
        chunks.append(chunk)
        size += len(chunk)
        if size >= ANSWER_READ:
            break
    return b"".join(chunks)
