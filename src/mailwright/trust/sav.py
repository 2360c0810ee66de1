"""Sender address verification: ask the MAIL FROM domain's own MX whether it would
accept mail for the sender (a "callout": EHLO, MAIL FROM:<>, RCPT TO:<sender>,
QUIT — never DATA, so nothing is ever sent).

Callouts cost the other side work, so answers are cached (positive and negative
separately) and callouts per domain are rate-limited; when the limit is hit or
no MX answers, the result is "unknown" and mail is not refused for it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from ..dns import DNSError, Resolver
from ..mx.connection import LOST, OutboundConnection, Transport
from ..mx.routing import NullMX, PermanentRouteError, exchangers
from ..smtpreply import Reply

MAX_CACHE = 100_000
RATE_WINDOW = 60.0
_CALLOUT = Transport(tls="none")


@dataclass(frozen=True)
class SAVResult:
    result: str             # pass | fail | unknown
    address: str
    reply: str = ""
    cached: bool = False


class SenderVerifier:
    def __init__(self, resolver: Resolver, hostname: str, *, port: int = 25,
                 positive_ttl: float = 86400.0, negative_ttl: float = 3600.0,
                 rate: int = 10, timeout: float = 30.0,
                 clock: Callable[[], float] = time.monotonic):
        self.resolver = resolver
        self.hostname = hostname
        self.port = port
        self.positive_ttl = positive_ttl
        self.negative_ttl = negative_ttl
        self.rate = rate                      # callouts per domain per minute
        self.timeout = timeout
        self.clock = clock
        self.cache: OrderedDict[str, tuple[float, SAVResult]] = OrderedDict()
        self.recent: dict[str, list[float]] = {}
        self.callouts = 0

    async def verify(self, address: str) -> SAVResult:
        key = address.lower()
        now = self.clock()
        hit = self.cache.get(key)
        if hit and hit[0] > now:
            return SAVResult(hit[1].result, hit[1].address, hit[1].reply, cached=True)
        domain = key.rpartition("@")[2]
        recent = [t for t in self.recent.get(domain, []) if t > now - RATE_WINDOW]
        if len(recent) >= self.rate:
            return SAVResult("unknown", address, "callout rate limit reached")
        self.recent[domain] = recent + [now]
        result = await self._callout(address, domain)
        ttl = {"pass": self.positive_ttl, "fail": self.negative_ttl}.get(result.result)
        if ttl:
            self.cache[key] = (now + ttl, result)
            self.cache.move_to_end(key)
            while len(self.cache) > MAX_CACHE:
                self.cache.popitem(last=False)
        return result

    async def _hosts(self, domain: str) -> list[tuple[str, str]]:
        """(name, address) of the domain's first three exchangers; [] for a null MX."""
        try:
            names = await exchangers(self.resolver, domain)
        except NullMX:
            return []                          # RFC 7505: accepts no mail
        hosts = []
        for name in names[:3]:
            try:
                hosts += [(name, ip) for ip in await self.resolver.addresses(name)]
            except DNSError:
                continue
        return hosts

    async def _callout(self, address: str, domain: str) -> SAVResult:
        try:
            hosts = await self._hosts(domain)
        except (DNSError, PermanentRouteError) as e:
            return SAVResult("unknown", address, f"DNS: {e}")
        if not hosts:
            return SAVResult("fail", address, "the domain accepts no mail (null MX)")
        for name, ip in hosts[:2]:
            self.callouts += 1
            reply = await self._ask(name, ip, address)
            if reply is None:
                continue
            if reply.code // 100 == 2:
                return SAVResult("pass", address, str(reply))
            if reply.code // 100 == 5:
                return SAVResult("fail", address, str(reply))
            return SAVResult("unknown", address, str(reply))
        return SAVResult("unknown", address, "no mail server answered")

    async def _ask(self, name: str, ip: str, address: str) -> Reply | None:
        """The reply to RCPT TO:<address> after MAIL FROM:<> (plaintext, as callouts
        always were); None when the host could not be asked."""
        connection = OutboundConnection(ip=ip, port=self.port, host=name, helo=self.hostname,
                                        timeout=self.timeout, transport=_CALLOUT)
        if await connection.open() is not None:
            return None
        try:
            if (await connection.smtp.command("MAIL FROM:<>")).code != 250:
                return None
            return await connection.smtp.command(f"RCPT TO:<{address}>")
        except LOST as e:
            connection.lost(e)
            return None
        finally:
            await connection.close()
