"""The queue runner: takes due messages from the store and delivers them.

For each message, recipients are grouped by domain; each domain is routed (MX)
and its hosts are tried in order until every recipient has a final answer or
the hosts run out. 2xx: delivered; 5xx: bounced; 4xx, connection and DNS
trouble: deferred with exponential backoff, bounced once the message is older
than max_age. Outcomes are committed to the store before the sender is told
(DSN) — so a crash between a remote 250 and our commit can deliver a message
twice, never lose it (the usual MTA trade, RFC 5321 §6.1).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Callable

from ..address import AddressError, parse_mailbox
from ..config import Config
from ..dns import NXDomain, Resolver, TempFailure
from ..events.log import EventLog
from ..store.base import Delivery, MailStore, QueuedMessage, RecipientUpdate, RemoteRecipient
from . import dsn
from .client import BOUNCED, DEFERRED, DELIVERED, MX_TRANSPORT, Outcome, Transport, attempt
from .routing import Hop, PermanentRouteError, route

log = logging.getLogger("mailwright.queue")


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


class QueueRunner:
    def __init__(self, config: Config, store: MailStore, resolver: Resolver, events: EventLog,
                 clock: Callable[[], float] = time.time):
        self.config = config
        self.settings = config.queue
        self.store = store
        self.resolver = resolver
        self.events = events
        self.clock = clock
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:  # logged; the next round tries again
                log.exception("queue run failed")
            try:
                await asyncio.wait_for(self._wake.wait(), self.settings.interval)
            except TimeoutError:
                pass
            self._wake.clear()

    async def run_once(self) -> int:
        """One pass over what is due; returns how many messages were attempted."""
        due = self.store.queue_due(self.clock(), limit=self.settings.concurrency * 5)
        gate = asyncio.Semaphore(self.settings.concurrency)

        async def one(message: QueuedMessage) -> None:
            async with gate:
                await self.deliver(message)
        await asyncio.gather(*(one(m) for m in due))
        return len(due)

    async def deliver(self, message: QueuedMessage) -> None:
        content = await asyncio.to_thread(self.store.read_blob, message.blob)
        by_domain: dict[str, list] = {}
        for r in message.recipients:
            by_domain.setdefault(r.address.rpartition("@")[2].lower(), []).append(r)
        outcomes: dict[int, Outcome] = {}
        for domain, recipients in by_domain.items():
            outcomes.update(await self._deliver_domain(message, domain, recipients, content))
        now = self.clock()
        expired = now - message.created >= self.settings.max_age
        updates, notices = [], []
        for r in message.recipients:
            outcome = outcomes[r.id]
            state = outcome.state
            if state == DEFERRED and expired:
                state = BOUNCED
                outcome = Outcome(BOUNCED, f"{outcome.reply} (gave up after "
                                  f"{self.settings.max_age / 86400:g} days)", outcome.remote)
            delay = min(self.settings.first_retry * 2 ** r.attempts, self.settings.max_retry)
            # RFC 3464 §2.3.3 "delayed": once per recipient, after delay_warning.
            warn = (state == DEFERRED and not r.delay_warned and self.settings.delay_warning > 0
                    and now - message.created >= self.settings.delay_warning)
            updates.append(RecipientUpdate(r.id, state, outcome.reply,
                                           now + delay if state == DEFERRED else now, warn))
            self.events.emit(state, None, message.message_id, rcpt=r.address,
                             remote=outcome.remote, reply=outcome.reply,
                             attempt=r.attempts + 1)
            action = {BOUNCED: "failed", DELIVERED: "delivered"}.get(state)
            if warn:
                action = "delayed"
            if action and dsn.wanted(r, action):
                notices.append(dsn.Notice(r, action, outcome.reply, outcome.remote))
        await self.store.queue_update(message.id, updates)
        if notices and message.mail_from:        # never bounce a bounce (RFC 3464 §2)
            await self._notify(message, notices, content)

    async def _hops(self, domain: str) -> tuple[list[Hop], int, Transport]:
        relay = self.config.relayhost
        if relay.host:
            try:
                addresses = (relay.host,) if _is_ip(relay.host) else \
                    tuple(await self.resolver.addresses(relay.host))
            except NXDomain:
                addresses = ()
            if not addresses:
                raise TempFailure(f"relayhost {relay.host} has no address")
            transport = Transport(relay.tls, relay.username, self.config.relayhost_password,
                                  relay.verify_certificate)
            return [Hop(relay.host, addresses)], relay.port, transport
        return await route(self.resolver, domain), self.settings.port, MX_TRANSPORT

    async def _deliver_domain(self, message: QueuedMessage, domain: str, recipients: list,
                              content: bytes) -> dict[int, Outcome]:
        try:
            hops, port, transport = await self._hops(domain)
        except PermanentRouteError as e:
            return {r.id: Outcome(BOUNCED, f"550 {e.status} {e.text}") for r in recipients}
        except TempFailure as e:
            return {r.id: Outcome(DEFERRED, f"451 4.4.3 DNS lookup failed: {e}")
                    for r in recipients}
        outcomes: dict[int, Outcome] = {}
        remaining = list(recipients)
        for hop in hops:
            for ip in hop.addresses:
                result = await attempt(ip=ip, port=port, host=hop.host, transport=transport,
                                       helo=self.config.hostname, message=message,
                                       recipients=remaining, content=content,
                                       timeout=self.settings.timeout,
                                       source_address=self.settings.source_address)
                outcomes.update(result)
                # 2xx and 5xx are final; a deferral may succeed at the next host.
                remaining = [r for r in remaining if result[r.id].state == DEFERRED]
                if not remaining:
                    return outcomes
        return outcomes

    async def _notify(self, message: QueuedMessage, notices: list[dsn.Notice],
                      original: bytes) -> None:
        """Send the DSN to the envelope sender, with the null reverse-path."""
        report = dsn.build(hostname=self.config.hostname, message=message, notices=notices,
                           original=original, now=self.clock())
        try:
            sender = parse_mailbox(message.mail_from)
        except AddressError:
            log.warning("cannot report to invalid sender %r", message.mail_from)
            return
        targets = self.store.resolve(sender)
        local = [t.account_id for t in targets or [] if t.is_local]
        remote = [RemoteRecipient(t.address) for t in targets or [] if not t.is_local] \
            if targets is not None else [RemoteRecipient(str(sender))]
        report_id = f"{message.message_id}D{int(self.clock() * 1000) % 100000:05d}"
        await self.store.deliver(Delivery(
            message_id=report_id, mail_from="", local_accounts=local,
            local_content=b"Return-Path: <>\r\n" + report if local else b"",
            remote=remote, relay_content=report if remote else b""))
        self.events.emit("dsn", None, report_id, to=str(sender),
                         actions=",".join(sorted({n.action for n in notices})))
        if remote:
            self.wake()
