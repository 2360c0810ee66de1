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
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from ..address import AddressError, parse_mailbox
from ..config import Config
from ..delivery import suppression
from ..delivery.destinations import destinations
from ..delivery.received import Recipient
from ..delivery.recipients import Target, resolve
from ..dns import Resolver, TempFailure
from ..events.log import EventLog
from ..events.types import Event
from ..mx.connection import OutboundConnection, Transport
from ..mx.routing import PermanentRouteError, RouteDefer, Router
from ..store.base import MailStore
from ..store.messages import Delivery
from ..store.queue import QueuedMessage, RecipientUpdate
from . import dsn, transaction
from .states import BOUNCED, DEFERRED, DELIVERED, FINAL, SUPPRESSED
from .transaction import Outcome

log = logging.getLogger("mailwright.queue")

class _Run:
    """Bookkeeping for one run_once: outcomes gathered per message until complete."""

    def __init__(self, runner: QueueRunner):
        self.runner = runner
        self.waiting: dict[int, int] = {}          # message id -> domains still open
        self.outcomes: dict[int, dict[int, Outcome]] = {}
        self.settling: list[asyncio.Future] = []

    def finished(self, item: Item, outcomes: dict[int, Outcome]) -> asyncio.Future | None:
        """Record outcomes; once the message is complete, commit it in the background
        and return that commit (the lane sends the next message meanwhile, and the
        commits of many lanes share a batch)."""
        mid = item.message.id
        self.outcomes.setdefault(mid, {}).update(outcomes)
        self.waiting[mid] -= 1
        if self.waiting[mid] != 0:
            return None
        commit = asyncio.ensure_future(
            self.runner._settle(item.message, self.outcomes.pop(mid)))
        self.settling.append(commit)
        return commit


@dataclass(frozen=True)
class Item:
    """Some recipients of one message, all in one destination domain."""
    message: QueuedMessage
    recipients: list


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
        self._stopping = False
        self.unreachable: dict[str, tuple[int, float]] = {}   # domain -> (failures, until)
        self.router = Router(config, resolver, events, clock)

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Shutdown: run() returns once the run in progress has recorded its outcomes
        (the app cancels it when its grace is over; what is not recorded then is tried
        again at the next start: a duplicate at worst, never a loss)."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            try:
                await self.run_once()
            except Exception:  # logged; the next round tries again
                log.exception("queue run failed")
            if self._stopping:
                return
            try:
                await asyncio.wait_for(self._wake.wait(), self.settings.interval)
            except TimeoutError:
                pass
            self._wake.clear()

    async def run_once(self) -> int:
        """One pass over what is due; returns how many messages were attempted.

        Recipients are grouped by destination domain across messages, so one
        connection carries several messages to the same place (up to
        per_destination connections per domain, `concurrency` domains at once).
        Each message is committed as soon as all its recipients have an outcome,
        which keeps the duplicate-after-crash window to the messages in flight."""
        due = await self.store.queue_claim(self.clock(), self.settings.concurrency * 25,
                                           lease=self.settings.lease)
        if not due:
            return 0
        run = _Run(self)
        by_domain: dict[str, list[Item]] = {}
        for m in due:
            # Checked before every attempt, not only at submission: an unsubscribe that
            # came while the message waited (for a retry, or behind others) still counts.
            stopped = await self._suppressed(m)
            per_domain: dict[str, list] = {}
            for r in m.recipients:
                if r.id not in stopped:
                    per_domain.setdefault(r.address.rpartition("@")[2].lower(), []).append(r)
            run.waiting[m.id] = len(per_domain)
            if stopped:
                run.outcomes[m.id] = stopped
                if not per_domain:
                    run.settling.append(asyncio.ensure_future(
                        self._settle(m, run.outcomes.pop(m.id))))
            for domain, recipients in per_domain.items():
                by_domain.setdefault(domain, []).append(Item(m, recipients))
        gate = asyncio.Semaphore(self.settings.concurrency)

        async def one_domain(domain: str, items: list[Item]) -> None:
            async with gate:
                await self._deliver_domain(domain, items, run)
        await asyncio.gather(*(one_domain(d, items) for d, items in by_domain.items()))
        await asyncio.gather(*run.settling)
        return len(due)

    async def _suppressed(self, message: QueuedMessage) -> dict[int, Outcome]:
        """The recipients of our user's message that its sending domain suppresses now
        (delivery/suppression.py), each a `suppressed` event: final, never sent, no DSN
        (the domain's own choice is not a delivery failure)."""
        domain = suppression.sending_domain(message.sender_account)
        if domain is None:
            return {}
        found = await suppression.suppressed(
            self.store, domain, [r.address for r in message.recipients], message.tag)
        stopped = {}
        for r in message.recipients:
            if (entry := found.get(r.address)) is not None:
                stopped[r.id] = Outcome(SUPPRESSED, f"not sent: suppressed by {domain} "
                                        f"({entry.reason})")
                self.events.emit(Event.SUPPRESSED, None, message.message_id, rcpt=r.address,
                                 domain=domain, reason=entry.reason, stage="queue",
                                 tag=message.tag)
        return stopped

    async def _suppress_bounced(self, message: QueuedMessage, bounced: list[tuple[str, str]],
                                now: float) -> None:
        """[campaigns] suppress_on_bounce: the hard bounces of our user's message put
        their addresses on its sending domain's list (for all its mail: the address is
        dead, whatever the campaign)."""
        domain = suppression.sending_domain(message.sender_account)
        if domain is None or not self.config.campaigns.suppress_on_bounce:
            return
        for address, reply in bounced:
            if suppression.is_hard_bounce(reply):
                await suppression.add(self.store, domain, address, campaign=None,
                                      reason=suppression.BOUNCE, source=reply[:500],
                                      created=now)

    async def _settle(self, message: QueuedMessage, outcomes: dict[int, Outcome]) -> None:
        """Commit one message's outcomes, then tell the sender what they asked to know."""
        now = self.clock()
        expired = now - message.created >= self.settings.max_age
        # Seconds from queueing to this outcome (the delivery delay metric); never
        # negative should the clock step back.
        queued_for = round(max(0.0, now - message.created), 3)
        # Whose mail this is (the events' domain key: per-domain retention, webhooks,
        # statistics): the sender's domain, not the remote recipient's. None for a
        # bounce (<>): its recipient's, then.
        sender_domain = message.mail_from.rpartition("@")[2].lower() or None
        updates, notices, bounced = [], [], []
        for r in message.recipients:
            outcome = outcomes[r.id]
            state = outcome.state
            if state == SUPPRESSED:           # its event was emitted when it was found
                updates.append(RecipientUpdate(r.id, state, outcome.reply, now,
                                               address=r.address))
                continue
            if state == DEFERRED and expired:
                state = BOUNCED
                outcome = Outcome(BOUNCED, f"{outcome.reply} (gave up after "
                                  f"{self.settings.max_age / 86400:g} days)", outcome.remote)
            delay = min(self.settings.first_retry * 2 ** r.attempts, self.settings.max_retry)
            # RFC 3464 §2.3.3 "delayed": once per recipient, after delay_warning.
            warn = (state == DEFERRED and not r.delay_warned and self.settings.delay_warning > 0
                    and now - message.created >= self.settings.delay_warning)
            updates.append(RecipientUpdate(r.id, state, outcome.reply,
                                           now + delay if state == DEFERRED else now, warn,
                                           r.address, outcome.remote, outcome.tls))
            self.events.emit(Event(state), None, message.message_id, rcpt=r.address,
                             remote=outcome.remote, tls=outcome.tls, reply=outcome.reply,
                             attempt=r.attempts + 1, delay=queued_for, tag=message.tag,
                             domain=sender_domain)
            if state == BOUNCED:
                bounced.append((r.address, outcome.reply))
            action = {BOUNCED: "failed", DELIVERED: "delivered"}.get(state)
            if warn:
                action = "delayed"
            if action and dsn.wanted(r, action):
                notices.append(dsn.Notice(r, action, outcome.reply, outcome.remote))
        # Never bounce a bounce (RFC 3464 §2). The original is read before the update,
        # which drops the message (and its blob) once every recipient is final; its text
        # is kept for [events] message_retention_days, unless that is 0.
        original = await self._content(message) if notices and message.mail_from else None
        await self.store.queue_update(message.id, updates, FINAL, keep_finished=bool(
            self.config.events.message_retention_days))
        await self._suppress_bounced(message, bounced, now)
        if original is not None:
            await self._notify(message, notices, original)

    async def bounce(self, message_id: str, reply: str) -> int:
        """Return a message now (an admin's decision): its recipients not yet final are
        bounced with `reply`, the sender gets the "failed" DSN they asked for (RFC 3464
        §2.3.3) and the message leaves the queue. Returns how many were bounced.
        A delivery in flight at that moment may still report its own outcome."""
        message = await self.store.queue_message(message_id)
        waiting = [r for r in message.recipients if r.state not in FINAL] if message else []
        if message and waiting:
            await self._settle(replace(message, recipients=waiting),
                               {r.id: Outcome(BOUNCED, reply) for r in waiting})
        return len(waiting)

    async def _content(self, message: QueuedMessage) -> bytes:
        # Read when needed, one message at a time: never the whole due batch in memory.
        return await self.store.read_blob(message.blob)

    async def _deliver_domain(self, domain: str, items: list[Item], run: _Run) -> None:
        try:
            self._check_backoff(domain)
            route = await self.router.route(domain)
        except (PermanentRouteError, TempFailure, RouteDefer) as e:
            if isinstance(e, PermanentRouteError):
                outcome = Outcome(BOUNCED, f"550 {e.status} {e.text}")
            elif isinstance(e, RouteDefer):
                outcome = Outcome(DEFERRED, str(e))
            else:
                outcome = Outcome(DEFERRED, f"451 4.4.3 DNS lookup failed: {e}")
            for item in items:
                run.finished(item, {r.id: outcome for r in item.recipients})
            return
        endpoints = [(hop.host, ip, transport) for hop, transport in route.hops
                     for ip in hop.addresses]
        lanes = max(1, min(self.settings.per_destination, len(items)))
        reached = await asyncio.gather(*(self._lane(items[i::lanes], endpoints, route.port, run)
                                         for i in range(lanes)))
        self._note_reachability(domain, any(reached))

    def _check_backoff(self, domain: str) -> None:
        """A destination none of whose hosts could be reached recently is left alone
        until its backoff ends: new mail for it waits instead of hammering it."""
        failures, until = self.unreachable.get(domain, (0, 0.0))
        if until > self.clock():
            raise RouteDefer(f"451 4.4.1 {domain} unreachable ({failures} failed runs); "
                             f"next try in {int(until - self.clock())} s")

    def _note_reachability(self, domain: str, reached: bool) -> None:
        if reached:
            self.unreachable.pop(domain, None)
            return
        failures = self.unreachable.get(domain, (0, 0.0))[0] + 1
        delay = min(self.settings.first_retry * 2 ** (failures - 1), self.settings.max_retry)
        self.unreachable[domain] = (failures, self.clock() + delay)

    async def _lane(self, items: list[Item], endpoints: list[tuple[str, str, Transport]],
                    port: int, run: _Run) -> bool:
        """One connection at a time, carrying its share of the messages; what a host
        defers is tried at the next one (2xx and 5xx are final). Returns whether any
        host answered at all."""
        reached = False
        remaining: list[tuple[Item, dict[int, Outcome]]] = [(item, {}) for item in items]
        for n, (host, ip, transport) in enumerate(endpoints):
            last = n == len(endpoints) - 1
            connection = OutboundConnection(
                ip=ip, port=port, host=host, helo=self.config.hostname,
                timeout=self.settings.timeout, source_address=self.settings.source_address,
                transport=transport)
            if await connection.open() is None:
                reached = True
            still = []
            commit = None
            for item, got in remaining:
                # At most one delivered-but-uncommitted message per lane: that bounds
                # what a crash can make us send twice.
                if commit is not None:
                    await commit
                    commit = None
                pending = [r for r in item.recipients if r.id not in got
                           or got[r.id].state == DEFERRED]
                content = await self._content(item.message) \
                    if not connection.failure else b""
                got.update(await transaction.send(connection, item.message, pending, content))
                if not last and any(got[r.id].state == DEFERRED for r in pending):
                    still.append((item, got))
                else:
                    commit = run.finished(item, got)
            await connection.close()
            remaining = still
            if not remaining:
                return reached
        return reached

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
        targets = await resolve(self.store, sender)
        # A sender outside our domains gets the report through the queue.
        where = destinations([Recipient(sender, [Target(str(sender))] if targets is None
                                        else targets)])
        report_id = f"{message.message_id}D{int(self.clock() * 1000) % 100000:05d}"
        await self.store.deliver(Delivery(
            message_id=report_id, mail_from="", local=where.local,
            local_content=b"Return-Path: <>\r\n" + report if where.local else b"",
            remote=where.remote, relay_content=report if where.remote else b""))
        self.events.emit(Event.DSN, None, report_id, to=str(sender),
                         actions=",".join(sorted({n.action for n in notices})))
        if where.remote:
            self.wake()
