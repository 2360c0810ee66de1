"""Where mail for a domain goes, and how to talk to each host.

`lookup` is the MX lookup of RFC 5321 §5.1: MX hosts in preference order, shuffled
among equals, the domain itself when it has no MX (implicit MX), refusal for a null
MX (RFC 7505) or a domain that does not exist. `Router` picks the route of a
destination: a [[transports]] entry, else the relayhost, else the MX hosts, each
under DANE (RFC 7672) when it has validated TLSA records, else under the domain's
MTA-STS policy (RFC 8461).
"""

from __future__ import annotations

import ipaddress
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..config import Config
from ..dns import NXDomain, Resolver, TempFailure
from ..events.log import EventLog
from ..events.types import Event
from . import dane
from .connection import MX_TRANSPORT, Transport
from .mtasts import MTASTS


class PermanentRouteError(Exception):
    """The domain cannot receive mail: bounce now with this enhanced status."""

    def __init__(self, status: str, text: str):
        super().__init__(text)
        self.status = status
        self.text = text


class NullMX(PermanentRouteError):
    """RFC 7505 §3: the domain publishes that it accepts no mail."""

    def __init__(self, domain: str):
        super().__init__("5.1.10", f"domain {domain} accepts no mail (null MX)")


class RouteDefer(Exception):
    """No usable route now (a policy forbids the ones we have): defer with this reply."""


@dataclass(frozen=True)
class Hop:
    host: str
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class Route:
    """How to reach one destination: the hosts to try in order, each with the
    transport to use, all on one port."""
    hops: tuple[tuple[Hop, Transport], ...]
    port: int


async def exchangers(resolver: Resolver, domain: str,
                     rng: random.Random | None = None) -> list[str]:
    """The names of the hosts that receive a domain's mail: MX hosts by preference,
    shuffled among equals (RFC 5321 §5.1); the domain itself when it has no MX
    (implicit MX). A null MX raises NullMX, a domain that does not exist
    PermanentRouteError; DNS trouble raises TempFailure."""
    return (await _exchangers(resolver, domain, rng))[0]


async def _exchangers(resolver: Resolver, domain: str,
                      rng: random.Random | None) -> tuple[list[str], bool]:
    """exchangers(), and whether they are the implicit MX."""
    rng = rng or random
    try:
        mxs = await resolver.mx(domain)
    except NXDomain:
        raise PermanentRouteError("5.1.2", f"domain {domain} does not exist") from None
    if len(mxs) == 1 and mxs[0].host == "":
        raise NullMX(domain)
    if not mxs:
        return [domain], True
    by_pref: dict[int, list[str]] = {}
    for mx in mxs:
        by_pref.setdefault(mx.preference, []).append(mx.host)
    hosts = []
    for pref in sorted(by_pref):
        group = by_pref[pref]
        rng.shuffle(group)
        hosts += group
    return hosts, False


async def lookup(resolver: Resolver, domain: str,
                 rng: random.Random | None = None) -> list[Hop]:
    """The exchangers of a domain, each with its addresses; those without any are
    left out. When none is left, the domain cannot receive mail (permanent)."""
    hosts, implicit = await _exchangers(resolver, domain, rng)
    hops = []
    for host in hosts:
        try:
            addresses = await resolver.addresses(host)
        except NXDomain:
            continue
        if addresses:
            hops.append(Hop(host, tuple(addresses)))
    if not hops:
        if implicit:
            raise PermanentRouteError("5.1.2", f"domain {domain} has no MX and no address")
        raise PermanentRouteError("5.4.4", f"no MX host of {domain} has an address")
    return hops


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


class Router:
    def __init__(self, config: Config, resolver: Resolver, events: EventLog,
                 clock: Callable[[], float] = time.time):
        self.config = config
        self.settings = config.queue
        self.resolver = resolver
        self.events = events
        self.sts = MTASTS(resolver, self.settings.ca_bundle, self.settings.mta_sts_port,
                          clock=clock) if self.settings.mta_sts else None

    async def route(self, domain: str) -> Route:
        """Raises PermanentRouteError (bounce), TempFailure or RouteDefer (defer)."""
        for t in self.config.transports:
            if t.domain == domain:
                return Route(tuple((h, Transport(t.tls)) for h in await self._fixed(t.host)),
                             t.port)
        relay = self.config.relayhost
        if relay.host:
            transport = Transport(relay.tls, relay.username, self.config.relayhost_password,
                                  relay.verify_certificate)
            return Route(tuple((h, transport) for h in await self._fixed(relay.host)),
                         relay.port)
        return await self._mx_route(domain)

    async def _fixed(self, host: str) -> list[Hop]:
        """A configured next hop (transport or relayhost): a name or an address."""
        try:
            addresses = (host,) if _is_ip(host) else tuple(await self.resolver.addresses(host))
        except NXDomain:
            addresses = ()
        if not addresses:
            raise TempFailure(f"{host} has no address")
        return [Hop(host, addresses)]

    async def _mx_route(self, domain: str) -> Route:
        port = self.settings.port
        hops = await lookup(self.resolver, domain)
        tlsa = {h.host: () for h in hops}
        if self.settings.dane:
            tlsa = await dane.lookup(self.resolver, domain, [h.host for h in hops], port)
        policy = None
        if not any(tlsa.values()) and self.sts:
            # RFC 8461 §2: DANE, where present, takes precedence over MTA-STS.
            policy = await self.sts.policy(domain)
        if policy is None or policy.mode == "none":
            return Route(tuple((h, Transport(tlsa=tlsa[h.host]) if tlsa[h.host]
                                else MX_TRANSPORT) for h in hops), port)
        matching = [h for h in hops if policy.allows(h.host)]
        if policy.mode == "testing":
            if len(matching) < len(hops):
                self.events.emit(Event.MTA_STS_TESTING, domain=domain,
                                 unmatched=",".join(h.host for h in hops if h not in matching))
            return Route(tuple((h, MX_TRANSPORT) for h in hops), port)
        # enforce (RFC 8461 §5): listed MX hosts only, authenticated TLS only.
        if not matching:
            raise RouteDefer(f"451 4.7.5 no MX host of {domain} matches its MTA-STS policy")
        transport = Transport(tls="starttls", verify=True, cafile=self.settings.ca_bundle)
        return Route(tuple((h, transport) for h in matching), port)
